/* The fast path of the metadata parser: text laid out as lvm2 and lvcrypt write it, one item per line.
 *
 * lark (grammar.lark, lark_parse.py) stays the definition of the format and the source of every error
 * message.  But its parser costs about 3 us per token in Python, and even one regex match plus a Python
 * step per line (this module's predecessor) cost ~7,000 instructions a line, most of a `metadata check`.
 * lvm2's own layout is so regular that a line is one of `key = value`, `name {`, `}`, blank or comment,
 * so this module reads the lines that have exactly that shape, in one pass over the text's UTF-8, and
 * builds the same `Section` tree with the same line numbers.  It declines (returns None) on anything
 * else: several items on one line, a comment inside an array, a duplicate key, an integer beyond 64 bits,
 * nesting beyond MAX_DEPTH, unbalanced braces, odd whitespace, lone surrogates (no UTF-8).  parse.py then
 * runs lark on the text, which either parses it or says what is wrong and where.
 *
 * The accepted lines are those of this regex over the text (a newline appended when it lacks one), with
 * the grammar's terminals and blank space limited to spaces and tabs except between array elements, where
 * lvm2 breaks lines (`\s` there is Python's: Unicode whitespace):
 *
 *     \n
 *   | [ \t]*+ (?: KEY [ \t]*+ (?: = [ \t]*+ (STRING|ARRAY|NUMBER) | \{ ) | \} | ) [ \t]*+ (?:\#[^\n]*+)? \n
 *
 *     KEY    [A-Za-z0-9_.+\-]++
 *     STRING "(?:[^"\\\n]|\\.)*+"             a backslash keeps the character after it
 *     NUMBER -?[0-9]++(?:\.[0-9]++)?+         int in [-2**63, 2**64 - 1], or float with a point
 *     ARRAY  \[\s*+(?:ELEM(?:\s*+,\s*+ELEM)*+)?+\s*+\]     ELEM: STRING or NUMBER
 *
 * The tree is what the model cache pickles (store/cache.py), and a pickle writes a shared object once and
 * refers to it after: so there is one str per distinct key or string (keys, values and array items alike),
 * and per distinct array text one set of values, copied into a fresh list for each key that holds it
 * (lvm2 repeats the same few arrays, status and flags, in every LV).
 *
 * tests/metadata/test_metadata_plain_layout.py proves the two parsers agree on generated texts, on every
 * decline rule and on every fixture under tests/data.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

/* The format's limits, the same as metadata/tree.py's (a test compares them). */
#define MAX_DEPTH 32
#define INT_MIN_MAGNITUDE ((uint64_t)1 << 63)

typedef enum { OK = 0, DECLINE = 1, FAILED = -1 } Outcome;

/* An open-addressing table from byte strings to objects: the parse's shared strings and arrays.  It owns
 * a reference to each object; the bytes it points at live in the text or in the arena. */
typedef struct {
    uint64_t hash;
    const char *bytes;
    Py_ssize_t size;
    PyObject *object;
} Entry;

typedef struct {
    Entry *entries;
    size_t mask;
    size_t used;
} Table;

/* Unescaped strings' bytes, kept as long as the table that points at them. */
typedef struct Block {
    struct Block *next;
    char data[];
} Block;

typedef struct {
    PyTypeObject *section_type;
    PyObject *line_slot;       /* the type's `line` descriptor */
    PyObject *key_lines_slot;  /* the type's `key_lines` descriptor */
    Table strings;
    Table arrays;
    Block *blocks;
    PyObject *no_args;         /* () for dict.__new__ */
    char *scratch;             /* a string's unescaped bytes, a float's digits */
    size_t scratch_size;
} Parser;

static uint64_t hash_bytes(const char *bytes, Py_ssize_t size)
{
    uint64_t hash = 0x9E3779B97F4A7C15ull ^ (uint64_t)size;
    uint64_t word;
    while (size >= 8) {
        memcpy(&word, bytes, 8);
        hash = (hash ^ word) * 0xff51afd7ed558ccdull;
        hash ^= hash >> 32;
        bytes += 8;
        size -= 8;
    }
    if (size > 0) {
        word = 0;
        memcpy(&word, bytes, (size_t)size);
        hash = (hash ^ word) * 0xff51afd7ed558ccdull;
    }
    hash ^= hash >> 29;
    hash *= 0xc4ceb9fe1a85ec53ull;
    return hash ^ (hash >> 32);
}

/* The slot holding `bytes`, or the empty slot where they would go. */
static Entry *table_slot(Table *table, const char *bytes, Py_ssize_t size, uint64_t hash)
{
    size_t index = (size_t)hash & table->mask;
    for (;;) {
        Entry *entry = &table->entries[index];
        if (entry->object == NULL ||
            (entry->hash == hash && entry->size == size && memcmp(entry->bytes, bytes, (size_t)size) == 0))
            return entry;
        index = (index + 1) & table->mask;
    }
}

static int table_init(Table *table)
{
    table->mask = 255;
    table->used = 0;
    table->entries = PyMem_Calloc(table->mask + 1, sizeof(Entry));
    if (table->entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Fill an empty slot (the table takes the reference to `object`, even when it then fails to grow);
 * the table doubles at half full. */
static int table_fill(Table *table, Entry *slot, const char *bytes, Py_ssize_t size, uint64_t hash,
                      PyObject *object)
{
    slot->hash = hash;
    slot->bytes = bytes;
    slot->size = size;
    slot->object = object;
    if (++table->used * 2 <= table->mask + 1)
        return 0;
    size_t old_size = table->mask + 1;
    Entry *old = table->entries;
    Entry *grown = PyMem_Calloc(old_size * 2, sizeof(Entry));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    table->entries = grown;
    table->mask = old_size * 2 - 1;
    for (size_t i = 0; i < old_size; i++) {
        if (old[i].object == NULL)
            continue;
        size_t index = (size_t)old[i].hash & table->mask;
        while (grown[index].object != NULL)
            index = (index + 1) & table->mask;
        grown[index] = old[i];
    }
    PyMem_Free(old);
    return 0;
}

static void table_clear(Table *table)
{
    if (table->entries == NULL)
        return;
    for (size_t i = 0; i <= table->mask; i++)
        Py_XDECREF(table->entries[i].object);
    PyMem_Free(table->entries);
    table->entries = NULL;
}

static char *scratch(Parser *parser, size_t size)
{
    if (size > parser->scratch_size) {
        char *grown = PyMem_Realloc(parser->scratch, size);
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        parser->scratch = grown;
        parser->scratch_size = size;
    }
    return parser->scratch;
}

static const char *keep(Parser *parser, const char *bytes, Py_ssize_t size)
{
    Block *block = PyMem_Malloc(sizeof(Block) + (size_t)size);
    if (block == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(block->data, bytes, (size_t)size);
    block->next = parser->blocks;
    parser->blocks = block;
    return block->data;
}

/* The one str of these UTF-8 bytes in this parse (a borrowed reference: the table holds it).  `stable`
 * says the bytes outlive the parse (they are the text's); else they are copied for the table. */
static PyObject *shared_str(Parser *parser, const char *bytes, Py_ssize_t size, int ascii, int stable)
{
    uint64_t hash = hash_bytes(bytes, size);
    Entry *slot = table_slot(&parser->strings, bytes, size, hash);
    if (slot->object != NULL)
        return slot->object;
    PyObject *string;
    if (ascii && size > 1) {
        string = PyUnicode_New(size, 127);
        if (string == NULL)
            return NULL;
        memcpy(PyUnicode_1BYTE_DATA(string), bytes, (size_t)size);
    } else {
        string = PyUnicode_DecodeUTF8(bytes, size, NULL);
        if (string == NULL)
            return NULL;
    }
    if (!stable && (bytes = keep(parser, bytes, size)) == NULL) {
        Py_DECREF(string);
        return NULL;
    }
    if (table_fill(&parser->strings, slot, bytes, size, hash, string) < 0)
        return NULL;
    return string;
}

/* The grammar's _NAME characters, [A-Za-z0-9_.+\-]: a table, as the scan's innermost test. */
static const unsigned char key_chars[256] = {
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int is_key_char(char c)
{
    return key_chars[(unsigned char)c];
}

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Past Python's `\s*` (Unicode whitespace, newlines counted), stopping at `end`.  The text is the UTF-8
 * of a str, so a lead byte's continuation bytes are there. */
static const char *skip_space(const char *p, const char *end, Py_ssize_t *newlines)
{
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n') {
            ++*newlines;
            p++;
        } else if (c < 0x80) {
            if (!Py_UNICODE_ISSPACE(c))
                break;
            p++;
        } else {
            Py_UCS4 point;
            int length;
            const unsigned char *u = (const unsigned char *)p;
            if (c < 0xE0) {
                point = ((Py_UCS4)(c & 0x1F) << 6) | (u[1] & 0x3F);
                length = 2;
            } else if (c < 0xF0) {
                point = ((Py_UCS4)(c & 0x0F) << 12) | ((Py_UCS4)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
                length = 3;
            } else {
                break;  /* no whitespace beyond the BMP */
            }
            if (!Py_UNICODE_ISSPACE(point))
                break;
            p += length;
        }
    }
    return p;
}

/* The end of the line after an item: blanks, maybe a comment, the newline; NULL if something else. */
static const char *line_end(const char *p, const char *end)
{
    p = skip_blanks(p);
    if (*p == '#')
        p = memchr(p, '\n', (size_t)(end - p));
    return *p == '\n' ? p + 1 : NULL;
}

/* A quoted string from its opening quote: its end (past the closing quote) or NULL. */
static const char *scan_string(const char *p, int *escaped, int *ascii)
{
    unsigned char seen = 0;
    *escaped = 0;
    for (p++;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c == '\n')
            return NULL;
        if (c == '\\') {
            if (p[1] == '\n')
                return NULL;
            *escaped = 1;
            p++;
            c = (unsigned char)*p;
        }
        seen |= c;
    }
    *ascii = seen < 0x80;
    return p + 1;
}

/* A number's end, or NULL when there are no digits; `point` tells a float. */
static const char *scan_number(const char *p, int *point)
{
    const char *digits = p += *p == '-';
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == digits)
        return NULL;
    *point = 0;
    if (p[0] == '.' && p[1] >= '0' && p[1] <= '9') {
        *point = 1;
        for (p += 2; *p >= '0' && *p <= '9'; p++)
            ;
    }
    return p;
}

static Outcome string_value(Parser *parser, const char *start, const char *stop, int escaped, int ascii,
                            PyObject **value)
{
    const char *body = start + 1;
    Py_ssize_t size = stop - 1 - body;
    if (!escaped) {
        *value = shared_str(parser, body, size, ascii, 1);
        return *value ? OK : FAILED;
    }
    char *unescaped = scratch(parser, (size_t)size);
    if (unescaped == NULL)
        return FAILED;
    Py_ssize_t length = 0;
    for (const char *p = body; p < body + size; p++) {
        if (*p == '\\')
            p++;
        unescaped[length++] = *p;
    }
    *value = shared_str(parser, unescaped, length, ascii, 0);
    return *value ? OK : FAILED;
}

/* A new int or float of a number scan_number accepted; DECLINE beyond the 64-bit range. */
static Outcome number_value(Parser *parser, const char *start, const char *stop, int point, PyObject **value)
{
    if (point) {
        size_t size = (size_t)(stop - start);
        char *digits = scratch(parser, size + 1);
        if (digits == NULL)
            return FAILED;
        memcpy(digits, start, size);
        digits[size] = '\0';
        double number = PyOS_string_to_double(digits, NULL, NULL);
        if (number == -1.0 && PyErr_Occurred())
            return FAILED;
        *value = PyFloat_FromDouble(number);
        return *value ? OK : FAILED;
    }
    int negative = *start == '-';
    uint64_t magnitude = 0;
    for (const char *p = start + negative; p < stop; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (magnitude > (UINT64_MAX - digit) / 10)
            return DECLINE;
        magnitude = magnitude * 10 + digit;
    }
    if (!negative)
        *value = magnitude <= (uint64_t)LLONG_MAX ? PyLong_FromLongLong((long long)magnitude)
                                                   : PyLong_FromUnsignedLongLong(magnitude);
    else if (magnitude < INT_MIN_MAGNITUDE)
        *value = PyLong_FromLongLong(-(long long)magnitude);
    else if (magnitude == INT_MIN_MAGNITUDE)
        *value = PyLong_FromLongLong(LLONG_MIN);
    else
        return DECLINE;
    return *value ? OK : FAILED;
}

/* An array's elements from its `[`: its end past the `]` (NULL if it is not one) and the newlines in
 * it.  With `items` it also appends the values (then DECLINE and FAILED come through `outcome`). */
static const char *scan_array(Parser *parser, const char *p, const char *end, Py_ssize_t *newlines,
                              PyObject *items, Outcome *outcome)
{
    *outcome = OK;
    p = skip_space(p + 1, end, newlines);
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        if (p == end)
            return NULL;
        const char *start = p;
        PyObject *value = NULL;
        if (*p == '"') {
            int escaped, ascii;
            if ((p = scan_string(p, &escaped, &ascii)) == NULL)
                return NULL;
            if (items != NULL) {
                *outcome = string_value(parser, start, p, escaped, ascii, &value);
                Py_XINCREF(value);
            }
        } else {
            int point;
            if ((p = scan_number(p, &point)) == NULL)
                return NULL;
            if (items != NULL)
                *outcome = number_value(parser, start, p, point, &value);
        }
        if (*outcome != OK)
            return NULL;
        if (items != NULL) {
            int appended = PyList_Append(items, value);
            Py_DECREF(value);
            if (appended < 0) {
                *outcome = FAILED;
                return NULL;
            }
        }
        p = skip_space(p, end, newlines);
        if (p == end)
            return NULL;
        if (*p == ']')
            return p + 1;
        if (*p != ',')
            return NULL;
        p = skip_space(p + 1, end, newlines);
    }
}

/* A fresh list of the array at `start`, its values shared with every other array of the same text. */
static Outcome array_value(Parser *parser, const char *start, const char *stop, const char *end,
                           PyObject **value)
{
    Py_ssize_t size = stop - start;
    uint64_t hash = hash_bytes(start, size);
    Entry *slot = table_slot(&parser->arrays, start, size, hash);
    PyObject *known = slot->object;
    if (known == NULL) {
        Py_ssize_t newlines = 0;
        Outcome outcome;
        if ((known = PyList_New(0)) == NULL)
            return FAILED;
        scan_array(parser, start, end, &newlines, known, &outcome);
        if (outcome != OK) {
            Py_DECREF(known);
            return outcome;
        }
        if (table_fill(&parser->arrays, slot, start, size, hash, known) < 0)
            return FAILED;
    }
    Py_ssize_t count = PyList_GET_SIZE(known);
    if ((*value = PyList_New(count)) == NULL)
        return FAILED;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(known, i);
        Py_INCREF(item);
        PyList_SET_ITEM(*value, i, item);
    }
    return OK;
}

static int set_slot(PyObject *slot, PyObject *object, PyObject *value)
{
    return Py_TYPE(slot)->tp_descr_set(slot, object, value);
}

/* A new empty Section at `line`: dict.__new__ and its two slots, without a Python __init__ call (25,000
 * sections in a 10,000-LV VG).  Its key_lines dict, borrowed (the section holds it), goes in `key_lines`. */
static PyObject *new_section(Parser *parser, Py_ssize_t line, PyObject **key_lines)
{
    PyObject *section = PyDict_Type.tp_new(parser->section_type, parser->no_args, NULL);
    if (section == NULL)
        return NULL;
    PyObject *number = PyLong_FromSsize_t(line);
    PyObject *lines = PyDict_New();
    int failed = number == NULL || lines == NULL || set_slot(parser->line_slot, section, number) < 0 ||
                 set_slot(parser->key_lines_slot, section, lines) < 0;
    Py_XDECREF(number);
    Py_XDECREF(lines);
    if (failed) {
        Py_DECREF(section);
        return NULL;
    }
    *key_lines = lines;
    return section;
}

/* section[key] = value (taking the reference to `value`) and key_lines[key] = line; DECLINE for a
 * duplicate key. */
static Outcome add(PyObject *section, PyObject *key_lines, PyObject *key, PyObject *value, Py_ssize_t line)
{
    Py_ssize_t size = PyDict_GET_SIZE(section);
    PyObject *stored = PyDict_SetDefault(section, key, value);
    Py_DECREF(value);
    if (stored == NULL)
        return FAILED;
    if (PyDict_GET_SIZE(section) == size)  /* the key was there (maybe with this very value: 1, a shared str) */
        return DECLINE;
    PyObject *number = PyLong_FromSsize_t(line);
    if (number == NULL)
        return FAILED;
    int failed = PyDict_SetItem(key_lines, key, number);
    Py_DECREF(number);
    return failed < 0 ? FAILED : OK;
}

/* The value after `key =` at `p`: added to `section`, `*next` past the line (and `*line` past an array's
 * newlines). */
static Outcome item(Parser *parser, const char *p, const char *end, PyObject *section, PyObject *key_lines,
                    PyObject *key, Py_ssize_t *line, const char **next)
{
    const char *start = p;
    PyObject *value = NULL;
    Outcome outcome;
    Py_ssize_t newlines = 0;
    if (*p == '"') {
        int escaped, ascii;
        if ((p = scan_string(p, &escaped, &ascii)) == NULL || (*next = line_end(p, end)) == NULL)
            return DECLINE;
        outcome = string_value(parser, start, p, escaped, ascii, &value);
        Py_XINCREF(value);
    } else if (*p == '[') {
        Outcome unused;
        if ((p = scan_array(parser, p, end, &newlines, NULL, &unused)) == NULL ||
            (*next = line_end(p, end)) == NULL)
            return DECLINE;
        outcome = array_value(parser, start, p, end, &value);
    } else {
        int point;
        if ((p = scan_number(p, &point)) == NULL || (*next = line_end(p, end)) == NULL)
            return DECLINE;
        outcome = number_value(parser, start, p, point, &value);
    }
    if (outcome != OK)
        return outcome;
    outcome = add(section, key_lines, key, value, *line);
    *line += newlines;
    return outcome;
}

/* The tree of the text in [start, end), which ends with a newline; NULL with DECLINE or FAILED in
 * `outcome` otherwise. */
static PyObject *parse(Parser *parser, const char *start, const char *end, Outcome *outcome)
{
    PyObject *sections[MAX_DEPTH + 1];
    PyObject *key_lines[MAX_DEPTH + 1];
    int depth = 0;
    Py_ssize_t line = 0;
    PyObject *root = new_section(parser, 1, &key_lines[0]);
    if (root == NULL) {
        *outcome = FAILED;
        return NULL;
    }
    sections[0] = root;
    *outcome = OK;
    for (const char *p = start; p < end && *outcome == OK;) {
        line++;
        if (*p == '\n') {
            p++;
            continue;
        }
        p = skip_blanks(p);
        if (is_key_char(*p)) {
            const char *key_start = p;
            while (is_key_char(*p))
                p++;
            Py_ssize_t key_size = p - key_start;
            p = skip_blanks(p);
            if (*p != '=' && *p != '{') {
                *outcome = DECLINE;
                break;
            }
            PyObject *key = shared_str(parser, key_start, key_size, 1, 1);
            if (key == NULL) {
                *outcome = FAILED;
                break;
            }
            if (*p == '=') {
                *outcome = item(parser, skip_blanks(p + 1), end, sections[depth], key_lines[depth], key, &line, &p);
            } else if ((p = line_end(p + 1, end)) != NULL) {
                if (depth == MAX_DEPTH) {
                    *outcome = DECLINE;
                    break;
                }
                PyObject *child = new_section(parser, line, &key_lines[depth + 1]);
                if (child == NULL) {
                    *outcome = FAILED;
                    break;
                }
                sections[++depth] = child;
                *outcome = add(sections[depth - 1], key_lines[depth - 1], key, child, line);
            } else {
                *outcome = DECLINE;
            }
        } else if (*p == '}') {
            if ((p = line_end(p + 1, end)) == NULL || depth == 0)
                *outcome = DECLINE;
            else
                depth--;
        } else if ((p = line_end(p, end)) == NULL) {
            *outcome = DECLINE;
        }
    }
    if (*outcome == OK && depth != 0)
        *outcome = DECLINE;
    if (*outcome != OK) {
        Py_DECREF(root);
        return NULL;
    }
    return root;
}

/* The text's UTF-8 ending with a newline, as parse() needs: the str's own bytes when it is ASCII (a
 * compact ASCII str is its UTF-8), else a temporary bytes in `*encoded` (not the str's cached UTF-8, which
 * would live as long as the text); copied into `*copy` when it lacks the final newline.  NULL with an
 * exception set if the text has no UTF-8 (lone surrogates). */
static const char *utf8_lines(PyObject *text, Py_ssize_t *size, PyObject **encoded, char **copy)
{
    const char *bytes;
    *encoded = NULL;
    *copy = NULL;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0)
        return NULL;
#endif
    if (PyUnicode_IS_ASCII(text)) {
        if ((bytes = PyUnicode_AsUTF8AndSize(text, size)) == NULL)
            return NULL;
    } else {
        if ((*encoded = PyUnicode_AsUTF8String(text)) == NULL)
            return NULL;
        bytes = PyBytes_AS_STRING(*encoded);
        *size = PyBytes_GET_SIZE(*encoded);
    }
    if (*size > 0 && bytes[*size - 1] == '\n')
        return bytes;
    if ((*copy = PyMem_Malloc((size_t)*size + 1)) == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(*copy, bytes, (size_t)*size);
    (*copy)[(*size)++] = '\n';
    return *copy;
}

static PyObject *parse_plain_layout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyType_IsSubtype((PyTypeObject *)args[1], &PyDict_Type)) {
        PyErr_SetString(PyExc_TypeError, "parse_plain_layout(text: str, section_type: type[dict])");
        return NULL;
    }
    Parser parser = {.section_type = (PyTypeObject *)args[1]};
    PyObject *tree = NULL;
    Outcome outcome = FAILED;
    PyObject *encoded;
    char *copy;
    Py_ssize_t size;
    const char *text = utf8_lines(args[0], &size, &encoded, &copy);
    if (text == NULL) {
        Py_XDECREF(encoded);
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return NULL;
        PyErr_Clear();  /* lone surrogates: not text lvm2 wrote; lark decides */
        Py_RETURN_NONE;
    }
    parser.no_args = PyTuple_New(0);
    parser.line_slot = PyObject_GetAttrString(args[1], "line");
    parser.key_lines_slot = PyObject_GetAttrString(args[1], "key_lines");
    if (parser.no_args == NULL || parser.line_slot == NULL || parser.key_lines_slot == NULL)
        goto done;
    if (Py_TYPE(parser.line_slot)->tp_descr_set == NULL || Py_TYPE(parser.key_lines_slot)->tp_descr_set == NULL) {
        PyErr_SetString(PyExc_TypeError, "section_type needs settable `line` and `key_lines` slots");
        goto done;
    }
    if (table_init(&parser.strings) < 0 || table_init(&parser.arrays) < 0)
        goto done;
    tree = parse(&parser, text, text + size, &outcome);
done:
    table_clear(&parser.strings);
    table_clear(&parser.arrays);
    while (parser.blocks != NULL) {
        Block *next = parser.blocks->next;
        PyMem_Free(parser.blocks);
        parser.blocks = next;
    }
    PyMem_Free(parser.scratch);
    PyMem_Free(copy);
    Py_XDECREF(encoded);
    Py_XDECREF(parser.no_args);
    Py_XDECREF(parser.line_slot);
    Py_XDECREF(parser.key_lines_slot);
    if (outcome == DECLINE)
        Py_RETURN_NONE;
    return tree;
}

static PyMethodDef methods[] = {
    {"parse_plain_layout", (PyCFunction)(void (*)(void))parse_plain_layout, METH_FASTCALL,
     "parse_plain_layout(text, section_type)\n--\n\n"
     "The tree of `text` (Sections of `section_type`, a dict subclass with `line` and `key_lines` slots)\n"
     "when every line has lvm2's plain shape, else None: lark then parses it or names the bad line."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lvcrypt.metadata._plain_layout",
    .m_doc = "lvm2's plain metadata layout read in C: the metadata parser's fast path (see _plain_layout.c).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__plain_layout(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddIntConstant(module, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
