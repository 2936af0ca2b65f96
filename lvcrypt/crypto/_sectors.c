/* The sector loop of lvcrypt's sector cipher, in C over OpenSSL's libcrypto (see sector.py).
 *
 * Python costs more per sector than AES does, so the loop over sectors, the
 * IVs and the XTS tweaks are computed here, with the GIL released; every
 * block cipher call is OpenSSL's.  The key is copied into OpenSSL contexts
 * and nowhere else; EVP_CIPHER_CTX_free cleanses them.  What the Python side
 * checks (spec, key size, sector alignment) is not checked again here; the
 * buffers (lengths, overlap) are, since only this side sees their addresses.
 *
 * XTS is OpenSSL's own XTS, one call per sector, whose IV is written straight
 * into the context (`native_iv`): setting it through EVP_CipherInit_ex costs
 * more than ciphering a 512-byte sector, and OpenSSL's one-pass XTS is about
 * a third faster than the two passes below.  OpenSSL's XTS refuses a key whose
 * halves are equal, which dm-crypt computes (sector.py explains why): such a
 * key, or an OpenSSL without that XTS or whose context IV cannot be written,
 * is computed as ECB between two XORs with the tweaks, C = E_K1(P ^ T) ^ T,
 * T_0 = E_K2(IV), T_j+1 = T_j * x in GF(2^128).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <errno.h>
#include <limits.h>
#include <sys/mman.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 16
#define BATCH_BYTES (16 * 1024) /* the tweaks of one batch stay in L1 with the data */

enum chain { CHAIN_XTS, CHAIN_CBC, CHAIN_ECB };
enum iv_mode { IV_PLAIN, IV_PLAIN64, IV_PLAIN64BE, IV_NULL, IV_ESSIV };

typedef struct {
    PyObject_HEAD
    EVP_CIPHER_CTX *enc;   /* XTS: OpenSSL's XTS, or ECB with K1 (without enc_iv); CBC: CBC; ECB: ECB */
    EVP_CIPHER_CTX *dec;
    unsigned char *enc_iv; /* OpenSSL's XTS: the IV inside enc's and dec's contexts (native_iv), else NULL */
    unsigned char *dec_iv;
    EVP_CIPHER_CTX *tweak; /* XTS on ECB: encryptor with K2 */
    EVP_CIPHER_CTX *essiv; /* ESSIV: ECB encryptor keyed by the hash of the key */
    int chain;
    int iv_mode;
    size_t sector_size;
    uint64_t iv_step;
    int busy; /* the loop runs without the GIL: a second thread must not share the contexts */
    unsigned char *tweaks; /* one batch of XTS tweaks, or one batch of CBC IVs */
} Engine;

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the tweak arithmetic below reads 64-bit words in the host's order: little-endian hosts only"
#endif

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t value;
    memcpy(&value, p, 8);
    return value;
}

static void store_le64(unsigned char *p, uint64_t value)
{
    memcpy(p, &value, 8);
}

static void store_be64(unsigned char *p, uint64_t value)
{
    store_le64(p, __builtin_bswap64(value));
}

/* The IV of IV number `number` before ESSIV's encryption (ESSIV encrypts the plain64 IV). */
static void plain_iv(int mode, uint64_t number, unsigned char *iv)
{
    memset(iv, 0, BLOCK);
    if (mode == IV_PLAIN)
        store_le64(iv, number & 0xFFFFFFFFu);
    else if (mode == IV_PLAIN64BE)
        store_be64(iv + 8, number);
    else if (mode != IV_NULL)
        store_le64(iv, number);
}

static int ecb_update(EVP_CIPHER_CTX *ctx, const unsigned char *in, unsigned char *out, size_t length)
{
    int written;
    return EVP_CipherUpdate(ctx, out, &written, in, (int)length) == 1 && (size_t)written == length;
}

/* The IVs of `count` sectors from IV number `first` into `ivs`, ESSIV-encrypted when the spec says so. */
static int sector_ivs(Engine *self, uint64_t first, size_t count, unsigned char *ivs)
{
    for (size_t i = 0; i < count; i++)
        plain_iv(self->iv_mode, first + i * self->iv_step, ivs + i * BLOCK);
    return self->essiv == NULL || ecb_update(self->essiv, ivs, ivs, count * BLOCK);
}

typedef uint64_t block_t __attribute__((vector_size(BLOCK))); /* one SSE2 register on x86-64 */

static block_t load_block(const unsigned char *p)
{
    block_t value;
    memcpy(&value, p, BLOCK);
    return value;
}

static void store_block(unsigned char *p, block_t value)
{
    memcpy(p, &value, BLOCK);
}

/* dst = src ^ T for every block of `sectors` sectors, T running from each sector's first tweak (T_j+1 =
 * T_j * x in GF(2^128), little-endian as IEEE 1619 has it); every T is kept in `tweaks` for the way back. */
static void xor_first_tweaks(unsigned char *dst, const unsigned char *src, unsigned char *tweaks,
                             const unsigned char *firsts, size_t sectors, size_t blocks)
{
    for (size_t s = 0; s < sectors; s++) {
        uint64_t lo = load_le64(firsts + s * BLOCK), hi = load_le64(firsts + s * BLOCK + 8);
        for (size_t j = 0; j < blocks; j++, src += BLOCK, dst += BLOCK, tweaks += BLOCK) {
            block_t tweak = {lo, hi};
            store_block(tweaks, tweak);
            store_block(dst, load_block(src) ^ tweak);
            uint64_t carry = hi >> 63;
            hi = (hi << 1) | (lo >> 63);
            lo = (lo << 1) ^ (0x87 & (0 - carry));
        }
    }
}

static void xor_tweaks(unsigned char *dst, const unsigned char *tweaks, size_t length)
{
    for (size_t i = 0; i < length; i += BLOCK)
        store_block(dst + i, load_block(dst + i) ^ load_block(tweaks + i));
}

static int xts_run(Engine *self, const unsigned char *src, unsigned char *dst, size_t length, uint64_t first_iv,
                   int decrypt)
{
    size_t batch_sectors = BATCH_BYTES >= self->sector_size ? BATCH_BYTES / self->sector_size : 1;
    size_t blocks = self->sector_size / BLOCK;
    unsigned char firsts[BLOCK * (BATCH_BYTES / 512)];
    EVP_CIPHER_CTX *ctx = decrypt ? self->dec : self->enc;
    for (size_t done = 0; done < length;) {
        size_t sectors = (length - done) / self->sector_size;
        if (sectors > batch_sectors)
            sectors = batch_sectors;
        size_t bytes = sectors * self->sector_size;
        if (!sector_ivs(self, first_iv, sectors, firsts) || !ecb_update(self->tweak, firsts, firsts, sectors * BLOCK))
            return 0;
        /* In dst: the plaintext never sits in a buffer of ours. */
        xor_first_tweaks(dst + done, src + done, self->tweaks, firsts, sectors, blocks);
        if (!ecb_update(ctx, dst + done, dst + done, bytes))
            return 0;
        xor_tweaks(dst + done, self->tweaks, bytes);
        done += bytes;
        first_iv += sectors * self->iv_step;
    }
    return 1;
}

/* OpenSSL's XTS, one update per sector after writing its IV into the context. */
static int xts_native_run(Engine *self, const unsigned char *src, unsigned char *dst, size_t length,
                          uint64_t first_iv, int decrypt)
{
    EVP_CIPHER_CTX *ctx = decrypt ? self->dec : self->enc;
    unsigned char *iv = decrypt ? self->dec_iv : self->enc_iv;
    size_t batch_sectors = BATCH_BYTES / BLOCK;
    for (size_t done = 0; done < length;) {
        size_t sectors = (length - done) / self->sector_size;
        if (sectors > batch_sectors)
            sectors = batch_sectors;
        if (!sector_ivs(self, first_iv, sectors, self->tweaks))
            return 0;
        for (size_t s = 0; s < sectors; s++, done += self->sector_size) {
            memcpy(iv, self->tweaks + s * BLOCK, BLOCK);
            if (!ecb_update(ctx, src + done, dst + done, self->sector_size))
                return 0;
        }
        first_iv += sectors * self->iv_step;
    }
    return 1;
}

static int cbc_run(Engine *self, const unsigned char *src, unsigned char *dst, size_t length, uint64_t first_iv,
                   int decrypt)
{
    EVP_CIPHER_CTX *ctx = decrypt ? self->dec : self->enc;
    size_t batch_sectors = BATCH_BYTES / 512;
    unsigned char *ivs = self->tweaks;
    for (size_t done = 0; done < length;) {
        size_t sectors = (length - done) / self->sector_size;
        if (sectors > batch_sectors)
            sectors = batch_sectors;
        if (!sector_ivs(self, first_iv, sectors, ivs))
            return 0;
        for (size_t s = 0; s < sectors; s++, done += self->sector_size)
            if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, ivs + s * BLOCK, -1) != 1
                || !ecb_update(ctx, src + done, dst + done, self->sector_size))
                return 0;
        first_iv += sectors * self->iv_step;
    }
    return 1;
}

static int ecb_run(Engine *self, const unsigned char *src, unsigned char *dst, size_t length, int decrypt)
{
    const size_t step = 1 << 30; /* EVP takes an int length */
    for (size_t done = 0; done < length; done += step)
        if (!ecb_update(decrypt ? self->dec : self->enc, src + done, dst + done, length - done < step ? length - done : step))
            return 0;
    return 1;
}

static EVP_CIPHER_CTX *new_context(const char *name, const unsigned char *key, size_t key_size, int encrypt)
{
    EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = cipher != NULL && ctx != NULL && (size_t)EVP_CIPHER_get_key_length(cipher) == key_size
             && EVP_CipherInit_ex2(ctx, cipher, key, NULL, encrypt, NULL) == 1 && EVP_CIPHER_CTX_set_padding(ctx, 0) == 1;
    EVP_CIPHER_free(cipher);
    if (!ok) {
        EVP_CIPHER_CTX_free(ctx);
        PyErr_Format(PyExc_ValueError, "OpenSSL has no usable %s for this key size", name);
        return NULL;
    }
    return ctx;
}

/* The IV inside `ctx`'s provider context, which its next update uses, or NULL.  OpenSSL hands it out as a
 * pointer (OSSL_CIPHER_PARAM_UPDATED_IV, what EVP_CIPHER_CTX_iv_noconst reads); writing through it is proven
 * on two blocks here, against the IV set by EVP_CipherInit_ex, before any data relies on it. */
static unsigned char *native_iv(EVP_CIPHER_CTX *ctx)
{
    static const unsigned char zeros[2 * BLOCK];
    const unsigned char probe[BLOCK] = {0x5a};
    unsigned char through_pointer[2 * BLOCK], through_init[2 * BLOCK];
    void *iv = NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_ptr(OSSL_CIPHER_PARAM_UPDATED_IV, &iv, BLOCK),
                           OSSL_PARAM_END};
    if (EVP_CIPHER_CTX_get_params(ctx, params) != 1 || iv == NULL || params[0].return_size != BLOCK)
        return NULL;
    int ok = EVP_CipherInit_ex(ctx, NULL, NULL, NULL, zeros, -1) == 1;
    memcpy(iv, probe, BLOCK);
    ok = ok && ecb_update(ctx, zeros, through_pointer, sizeof zeros)
         && EVP_CipherInit_ex(ctx, NULL, NULL, NULL, probe, -1) == 1
         && ecb_update(ctx, zeros, through_init, sizeof zeros)
         && memcmp(through_pointer, through_init, sizeof through_init) == 0;
    OPENSSL_cleanse(through_pointer, sizeof through_pointer);
    OPENSSL_cleanse(through_init, sizeof through_init);
    return ok ? iv : NULL;
}

/* OpenSSL's XTS context of the ECB cipher `ecb_name` ("aes-256-ecb": "aes-256-xts") with the whole key, its IV
 * in `iv`; NULL, with OpenSSL's error queue cleared, where OpenSSL refuses it (equal key halves, no such
 * cipher, no writable IV): the caller then computes XTS on ECB. */
static EVP_CIPHER_CTX *xts_context(const char *ecb_name, const unsigned char *key, size_t key_size, int encrypt,
                                   unsigned char **iv)
{
    static const unsigned char zeros[BLOCK];
    char name[64];
    size_t length = strlen(ecb_name);
    if (length < 4 || length >= sizeof name || strcmp(ecb_name + length - 4, "-ecb") != 0)
        return NULL;
    memcpy(name, ecb_name, length - 3);
    memcpy(name + length - 3, "xts", 4);
    EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = cipher != NULL && ctx != NULL && (size_t)EVP_CIPHER_get_key_length(cipher) == key_size
             && EVP_CIPHER_get_iv_length(cipher) == BLOCK
             && EVP_CipherInit_ex2(ctx, cipher, key, zeros, encrypt, NULL) == 1 && (*iv = native_iv(ctx)) != NULL;
    EVP_CIPHER_free(cipher);
    if (!ok) {
        EVP_CIPHER_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

static void engine_free_contexts(Engine *self)
{
    EVP_CIPHER_CTX_free(self->enc);
    EVP_CIPHER_CTX_free(self->dec);
    EVP_CIPHER_CTX_free(self->tweak);
    EVP_CIPHER_CTX_free(self->essiv);
    self->enc = self->dec = self->tweak = self->essiv = NULL;
    self->enc_iv = self->dec_iv = NULL;
    if (self->tweaks != NULL) {
        OPENSSL_cleanse(self->tweaks, BATCH_BYTES);
        PyMem_Free(self->tweaks);
        self->tweaks = NULL;
    }
}

static int lookup(const char *text, const char *const names[], int count, const char *what)
{
    for (int i = 0; i < count; i++)
        if (strcmp(text, names[i]) == 0)
            return i;
    PyErr_Format(PyExc_ValueError, "unknown %s '%s'", what, text);
    return -1;
}

/* The ESSIV encryptor: `cipher` keyed by hash(key); the digest is cleansed at once. */
static EVP_CIPHER_CTX *essiv_context(const char *cipher, const char *hash, const unsigned char *key, size_t key_size)
{
    unsigned char salt[EVP_MAX_MD_SIZE];
    unsigned int salt_size = 0;
    EVP_MD *md = EVP_MD_fetch(NULL, hash, NULL);
    int ok = md != NULL && EVP_Digest(key, key_size, salt, &salt_size, md, NULL) == 1;
    EVP_MD_free(md);
    EVP_CIPHER_CTX *ctx = NULL;
    if (ok)
        ctx = new_context(cipher, salt, salt_size, 1);
    else
        PyErr_Format(PyExc_ValueError, "OpenSSL has no hash %s", hash);
    OPENSSL_cleanse(salt, sizeof salt);
    return ctx;
}

static int engine_init(Engine *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"cipher", "chain", "key", "sector_size", "iv_mode", "iv_step", "essiv_cipher",
                               "essiv_hash", NULL};
    static const char *const chains[] = {"xts", "cbc", "ecb"};
    static const char *const iv_modes[] = {"plain", "plain64", "plain64be", "null", "essiv"};
    const char *cipher, *chain, *iv_mode, *essiv_cipher = NULL, *essiv_hash = NULL;
    Py_buffer key;
    Py_ssize_t sector_size;
    unsigned long long iv_step;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ssy*nsK|zz:Engine", keywords, &cipher, &chain, &key,
                                     &sector_size, &iv_mode, &iv_step, &essiv_cipher, &essiv_hash))
        return -1;
    engine_free_contexts(self);
    int ok = 0;
    self->chain = lookup(chain, chains, 3, "chain mode");
    self->iv_mode = lookup(iv_mode, iv_modes, 5, "IV mode");
    if (self->chain < 0 || self->iv_mode < 0)
        goto done;
    if (sector_size < 512 || sector_size % 512 || sector_size > BATCH_BYTES) {
        PyErr_SetString(PyExc_ValueError, "the sector size is not a multiple of 512 up to 16 KiB");
        goto done;
    }
    self->sector_size = (size_t)sector_size;
    self->iv_step = iv_step;
    const unsigned char *bytes = key.buf;
    size_t data_key = self->chain == CHAIN_XTS ? (size_t)key.len / 2 : (size_t)key.len;
    if (self->chain == CHAIN_XTS && (self->enc = xts_context(cipher, bytes, (size_t)key.len, 1, &self->enc_iv))
        && !(self->dec = xts_context(cipher, bytes, (size_t)key.len, 0, &self->dec_iv)))
        engine_free_contexts(self);
    if (self->enc == NULL) {
        if (!(self->enc = new_context(cipher, bytes, data_key, 1)) || !(self->dec = new_context(cipher, bytes, data_key, 0)))
            goto done;
        if (self->chain == CHAIN_XTS && !(self->tweak = new_context(cipher, bytes + data_key, data_key, 1)))
            goto done;
    }
    if (self->iv_mode == IV_ESSIV && self->chain != CHAIN_ECB) {
        if (essiv_cipher == NULL || essiv_hash == NULL) {
            PyErr_SetString(PyExc_ValueError, "essiv needs its cipher and hash");
            goto done;
        }
        if (!(self->essiv = essiv_context(essiv_cipher, essiv_hash, bytes, (size_t)key.len)))
            goto done;
    }
    if (!(self->tweaks = PyMem_Malloc(BATCH_BYTES))) {
        PyErr_NoMemory();
        goto done;
    }
    ok = 1;
done:
    PyBuffer_Release(&key);
    if (!ok)
        engine_free_contexts(self);
    return ok ? 0 : -1;
}

static PyObject *engine_run(Engine *self, PyObject *args, int decrypt)
{
    Py_buffer src, dst;
    unsigned long long first_iv;
    if (!PyArg_ParseTuple(args, "y*w*K", &src, &dst, &first_iv))
        return NULL;
    const char *problem = NULL;
    if (self->enc == NULL)
        problem = "the sector cipher is closed";
    else if (self->busy)
        problem = "the sector cipher is in use by another thread";
    else if (src.len != dst.len)
        problem = "source and destination differ in length";
    else if ((size_t)src.len % self->sector_size)
        problem = "the length is not a whole number of sectors";
    else if (src.buf != dst.buf && (const char *)src.buf < (const char *)dst.buf + dst.len
             && (const char *)dst.buf < (const char *)src.buf + src.len)
        problem = "source and destination overlap without being the same buffer";
    if (problem == NULL) {
        int ok;
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        if (self->chain == CHAIN_XTS && self->enc_iv != NULL)
            ok = xts_native_run(self, src.buf, dst.buf, (size_t)src.len, first_iv, decrypt);
        else if (self->chain == CHAIN_XTS)
            ok = xts_run(self, src.buf, dst.buf, (size_t)src.len, first_iv, decrypt);
        else if (self->chain == CHAIN_CBC)
            ok = cbc_run(self, src.buf, dst.buf, (size_t)src.len, first_iv, decrypt);
        else
            ok = ecb_run(self, src.buf, dst.buf, (size_t)src.len, decrypt);
        Py_END_ALLOW_THREADS
        self->busy = 0;
        if (!ok)
            problem = "OpenSSL failed to cipher the sectors";
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    if (problem != NULL) {
        PyErr_SetString(PyExc_ValueError, problem);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *engine_encrypt_into(Engine *self, PyObject *args)
{
    return engine_run(self, args, 0);
}

static PyObject *engine_decrypt_into(Engine *self, PyObject *args)
{
    return engine_run(self, args, 1);
}

static PyTypeObject EngineType;

static EVP_CIPHER_CTX *copy_context(const EVP_CIPHER_CTX *ctx, int *ok)
{
    if (ctx == NULL || !*ok)
        return NULL;
    EVP_CIPHER_CTX *copy = EVP_CIPHER_CTX_new();
    if (copy == NULL || EVP_CIPHER_CTX_copy(copy, ctx) != 1) {
        EVP_CIPHER_CTX_free(copy);
        *ok = 0;
        return NULL;
    }
    return copy;
}

/* A second engine with copies of the contexts: for another thread, without the key passing through Python. */
static PyObject *engine_copy(Engine *self, PyObject *Py_UNUSED(unused))
{
    if (self->enc == NULL || self->busy) {
        PyErr_SetString(PyExc_ValueError, self->enc == NULL ? "the sector cipher is closed"
                                                            : "the sector cipher is in use by another thread");
        return NULL;
    }
    Engine *copy = (Engine *)EngineType.tp_alloc(&EngineType, 0);
    if (copy == NULL)
        return NULL;
    int ok = 1;
    copy->chain = self->chain;
    copy->iv_mode = self->iv_mode;
    copy->sector_size = self->sector_size;
    copy->iv_step = self->iv_step;
    copy->enc = copy_context(self->enc, &ok);
    copy->dec = copy_context(self->dec, &ok);
    if (ok && self->enc_iv != NULL) {
        copy->enc_iv = native_iv(copy->enc);
        copy->dec_iv = native_iv(copy->dec);
        ok = copy->enc_iv != NULL && copy->dec_iv != NULL;
    }
    copy->tweak = copy_context(self->tweak, &ok);
    copy->essiv = copy_context(self->essiv, &ok);
    copy->tweaks = ok ? PyMem_Malloc(BATCH_BYTES) : NULL;
    if (copy->tweaks == NULL) {
        Py_DECREF(copy);
        return ok ? PyErr_NoMemory() : PyErr_Format(PyExc_ValueError, "OpenSSL failed to copy the sector cipher");
    }
    return (PyObject *)copy;
}

static PyObject *engine_close(Engine *self, PyObject *Py_UNUSED(unused))
{
    if (self->busy) {
        PyErr_SetString(PyExc_ValueError, "the sector cipher is in use by another thread");
        return NULL;
    }
    engine_free_contexts(self);
    Py_RETURN_NONE;
}

static void engine_dealloc(Engine *self)
{
    engine_free_contexts(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef engine_methods[] = {
    {"encrypt_into", (PyCFunction)engine_encrypt_into, METH_VARARGS,
     "encrypt_into(src, dst, first_iv): encrypt whole sectors; dst may be src."},
    {"decrypt_into", (PyCFunction)engine_decrypt_into, METH_VARARGS,
     "decrypt_into(src, dst, first_iv): decrypt whole sectors; dst may be src."},
    {"copy", (PyCFunction)engine_copy, METH_NOARGS, "A second engine with the same key, for another thread."},
    {"close", (PyCFunction)engine_close, METH_NOARGS, "Free (and so cleanse) the OpenSSL contexts."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lvcrypt.crypto._sectors.Engine",
    .tp_doc = PyDoc_STR("Engine(cipher, chain, key, sector_size, iv_mode, iv_step, essiv_cipher=None, "
                        "essiv_hash=None): dm-crypt's sectors over OpenSSL; the key goes into OpenSSL contexts only."),
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)engine_init,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_methods = engine_methods,
};

/* The key functions of LUKS keyslots, writing into the caller's buffer (a handler's wiped `Secret`), so
 * no immutable copy of a derived key is made.  A digest is fetched by cryptsetup's name; one OpenSSL
 * cannot fetch raises LookupError and the caller uses hashlib for it. */
static EVP_MD *fetch_digest(const char *name)
{
    EVP_MD *md = EVP_MD_fetch(NULL, name, NULL);
    if (md == NULL) {
        ERR_clear_error();
        PyErr_Format(PyExc_LookupError, "OpenSSL has no hash %s", name);
    }
    return md;
}

static PyObject *pbkdf2_hmac_into(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *name;
    Py_buffer password, salt, out;
    int iterations;
    if (!PyArg_ParseTuple(args, "sy*y*iw*:pbkdf2_hmac_into", &name, &password, &salt, &iterations, &out))
        return NULL;
    PyObject *result = NULL;
    EVP_MD *md = NULL;
    if (iterations < 1 || password.len > INT_MAX || salt.len > INT_MAX || out.len > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "PBKDF2 parameters out of range");
        goto done;
    }
    if ((md = fetch_digest(name)) == NULL)
        goto done;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PKCS5_PBKDF2_HMAC(password.buf, (int)password.len, salt.buf, (int)salt.len, iterations, md,
                           (int)out.len, out.buf);
    Py_END_ALLOW_THREADS
    if (!ok) {
        ERR_clear_error();
        PyErr_SetString(PyExc_ValueError, "PBKDF2 failed");
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    EVP_MD_free(md);
    PyBuffer_Release(&password);
    PyBuffer_Release(&salt);
    PyBuffer_Release(&out);
    return result;
}

/* cryptsetup's diffuse (lib/luks1/af.c): each digest-sized piece of `block` replaced in place by the hash
 * of its big-endian index and the piece (the last piece may be shorter: its hash is truncated). */
static int diffuse(EVP_MD_CTX *ctx, const EVP_MD *md, unsigned char *block, size_t size)
{
    size_t digest_size = (size_t)EVP_MD_get_size(md);
    unsigned char digest[EVP_MAX_MD_SIZE];
    int ok = 1;
    for (size_t start = 0, index = 0; ok && start < size; start += digest_size, index++) {
        size_t piece = size - start < digest_size ? size - start : digest_size;
        unsigned char prefix[4] = {(unsigned char)(index >> 24), (unsigned char)(index >> 16),
                                   (unsigned char)(index >> 8), (unsigned char)index};
        ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, prefix, 4) == 1
             && EVP_DigestUpdate(ctx, block + start, piece) == 1 && EVP_DigestFinal_ex(ctx, digest, NULL) == 1;
        memcpy(block + start, digest, piece);
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    return ok;
}

/* cryptsetup's AF_merge: XOR each stripe but the last into a running block, diffusing it after each; the
 * key is the last stripe XOR that block.  The running block is cleansed before it is freed. */
static PyObject *af_merge_into(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *name;
    Py_buffer split, out;
    Py_ssize_t stripes;
    if (!PyArg_ParseTuple(args, "sy*nw*:af_merge_into", &name, &split, &stripes, &out))
        return NULL;
    PyObject *result = NULL;
    EVP_MD *md = NULL;
    EVP_MD_CTX *ctx = NULL;
    unsigned char *running = NULL;
    size_t size = (size_t)out.len;
    if (stripes < 1 || (size != 0 && (size_t)split.len / size < (size_t)stripes)) {
        PyErr_SetString(PyExc_ValueError, "anti-forensic material is shorter than its stripes");
        goto done;
    }
    if (size == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if ((md = fetch_digest(name)) == NULL)
        goto done;
    if ((ctx = EVP_MD_CTX_new()) == NULL || (running = PyMem_Calloc(1, size)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const unsigned char *stripe = split.buf;
    int ok = 1;
    for (Py_ssize_t i = 0; ok && i < stripes - 1; i++, stripe += size) {
        for (size_t j = 0; j < size; j++)
            running[j] ^= stripe[j];
        ok = diffuse(ctx, md, running, size);
    }
    if (!ok) {
        ERR_clear_error();
        PyErr_SetString(PyExc_ValueError, "hashing the anti-forensic stripes failed");
        goto done;
    }
    unsigned char *key = out.buf;
    for (size_t j = 0; j < size; j++)
        key[j] = stripe[j] ^ running[j];
    result = Py_NewRef(Py_None);
done:
    if (running != NULL) {
        OPENSSL_cleanse(running, size);
        PyMem_Free(running);
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    PyBuffer_Release(&split);
    PyBuffer_Release(&out);
    return result;
}

/* Page locking and wiping of secrets' buffers (handlers/secret.py), here rather than through ctypes, whose
 * import cost a key file unlock more instructions than its PBKDF2.  A buffer is passed, not an address. */
static PyObject *lock_buffer(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int locked = view.len > 0 && mlock(view.buf, (size_t)view.len) == 0;
    PyBuffer_Release(&view);
    return PyBool_FromLong(locked);
}

static PyObject *unlock_buffer(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len > 0)
        munlock(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *cleanse_buffer(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE) < 0)
        return NULL;
    OPENSSL_cleanse(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *lock_all(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return PyLong_FromLong(mlockall(MCL_CURRENT | MCL_FUTURE) == 0 ? 0 : errno);
}

static PyObject *unlock_all(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    munlockall();
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"lock_buffer", lock_buffer, METH_O, "lock_buffer(buffer) -> bool: mlock its pages (False where refused)."},
    {"unlock_buffer", unlock_buffer, METH_O, "unlock_buffer(buffer): munlock its pages."},
    {"cleanse_buffer", cleanse_buffer, METH_O, "cleanse_buffer(buffer): zero it with OPENSSL_cleanse."},
    {"lock_all", lock_all, METH_NOARGS, "lock_all() -> errno: mlockall(MCL_CURRENT | MCL_FUTURE), 0 when done."},
    {"unlock_all", unlock_all, METH_NOARGS, "unlock_all(): munlockall."},
    {"pbkdf2_hmac_into", pbkdf2_hmac_into, METH_VARARGS,
     "pbkdf2_hmac_into(hash, password, salt, iterations, out): PKCS5_PBKDF2_HMAC into the writable buffer out."},
    {"af_merge_into", af_merge_into, METH_VARARGS,
     "af_merge_into(hash, split, stripes, out): cryptsetup's AF_merge of len(out)-byte stripes into out."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sectors_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_sectors",
    .m_doc = "dm-crypt's sector loop over OpenSSL (see lvcrypt/crypto/sector.py), PBKDF2, AF merge, secrets' page locks.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__sectors(void)
{
    if (PyType_Ready(&EngineType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&sectors_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
