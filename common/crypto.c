/*
 * crypto: AES-256-GCM for stored contact data, HMAC blind index for phone
 * lookup, and the masking of phone numbers, ID numbers and e-mail
 * addresses in text (rules in crypto.h). OpenSSL EVP only; no state of
 * its own, so every function is thread-safe.
 */
#include "crypto.h"

#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CRYPTO_KEY_HEX_LEN   64
#define CRYPTO_KEY_FILE_MAX  4096
#define CRYPTO_INDEX_CONTEXT "kesu-blind-index-v1"

/* ---------------------------------------------------------------- keys */

static int crypto_key_parse(crypto_keys_t *k, const char *hex, size_t len, const char *what,
                            char *errstr, size_t errstr_size)
{
    int rc = -1;
    char tmp[CRYPTO_KEY_HEX_LEN + 1];
    uint8_t acc = 0;

    if (len != CRYPTO_KEY_HEX_LEN) {
        snprintf(errstr, errstr_size,
                 "%s must be 64 hex characters (32 bytes), got %zu characters", what, len);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)hex[i])) {
            snprintf(errstr, errstr_size,
                     "%s must be 64 hex characters (32 bytes); character %zu is not a hex digit",
                     what, i + 1);
            goto out;
        }
    }
    memcpy(tmp, hex, len);
    tmp[len] = '\0';
    if (util_unhex(tmp, k->enc, sizeof(k->enc)) != 32) {
        snprintf(errstr, errstr_size, "%s is not valid hex", what);
        goto out;
    }
    for (size_t i = 0; i < sizeof(k->enc); i++)
        acc |= k->enc[i];
    if (!acc) {
        snprintf(errstr, errstr_size, "%s is all zeros; generate one with: openssl rand -hex 32",
                 what);
        goto out;
    }
    crypto_hmac_sha256(k->enc, sizeof(k->enc), CRYPTO_INDEX_CONTEXT, strlen(CRYPTO_INDEX_CONTEXT),
                       k->idx);
    rc = 0;
out:
    OPENSSL_cleanse(tmp, sizeof(tmp));
    if (rc != 0)
        crypto_keys_wipe(k);
    return rc;
}

int crypto_keys_load(crypto_keys_t *k, const char *spec, char *errstr, size_t errstr_size)
{
    int rc = -1;
    FILE *f = NULL;
    char buf[CRYPTO_KEY_FILE_MAX + 1];
    char what[300];
    size_t len = 0;

    crypto_keys_wipe(k);
    if (!spec || !*spec) {
        snprintf(errstr, errstr_size,
                 "pii key is not set: give 64 hex characters (32 bytes) or file:/path");
        goto out;
    }
    if (strncmp(spec, "file:", 5) != 0) {
        rc = crypto_key_parse(k, spec, strlen(spec), "pii key", errstr, errstr_size);
        goto out;
    }

    const char *path = spec + 5;
    struct stat st;
    snprintf(what, sizeof(what), "pii key in %s", path);
    f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, errstr_size, "cannot open pii key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        LOG_WARN("pii key file %s is readable by group or others; chmod 600 it", path);
    len = fread(buf, 1, sizeof(buf), f);
    if (ferror(f)) {
        snprintf(errstr, errstr_size, "cannot read pii key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (len > CRYPTO_KEY_FILE_MAX) {
        snprintf(errstr, errstr_size, "pii key file %s is too large (expected 64 hex characters)",
                 path);
        goto out;
    }
    buf[len] = '\0';
    size_t start = 0, end = len;
    while (start < end && isspace((unsigned char)buf[start]))
        start++;
    while (end > start && isspace((unsigned char)buf[end - 1]))
        end--;
    rc = crypto_key_parse(k, buf + start, end - start, what, errstr, errstr_size);
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    if (f)
        fclose(f);
    return rc;
}

void crypto_keys_wipe(crypto_keys_t *k)
{
    if (k)
        OPENSSL_cleanse(k, sizeof(*k));
}

/* ------------------------------------------------------ AES-256-GCM */

int crypto_encrypt(const crypto_keys_t *k, const uint8_t *plain, size_t n, uint8_t **out,
                   size_t *out_len, char *errstr, size_t errstr_size)
{
    int rc = -1;
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    static const uint8_t empty[1];
    int len = 0;

    *out = NULL;
    *out_len = 0;
    if (n > (size_t)INT_MAX - CRYPTO_OVERHEAD) {
        snprintf(errstr, errstr_size, "plaintext too large to encrypt (%zu bytes)", n);
        goto out;
    }
    buf = malloc(n + CRYPTO_OVERHEAD);
    ctx = EVP_CIPHER_CTX_new();
    if (!buf || !ctx) {
        snprintf(errstr, errstr_size, "out of memory encrypting %zu bytes", n);
        goto out;
    }
    uint8_t *nonce = buf + 1;
    uint8_t *ct = nonce + CRYPTO_NONCE_LEN;
    buf[0] = CRYPTO_VERSION;
    crypto_random(nonce, CRYPTO_NONCE_LEN);
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, k->enc, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, ct, &len, n ? plain : empty, (int)n) != 1 || (size_t)len != n ||
        EVP_EncryptFinal_ex(ctx, ct + len, &len) != 1 || len != 0 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN, ct + n) != 1) {
        snprintf(errstr, errstr_size, "aes-256-gcm encryption failed");
        goto out;
    }
    *out = buf;
    *out_len = n + CRYPTO_OVERHEAD;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int crypto_decrypt(const crypto_keys_t *k, const uint8_t *in, size_t n, uint8_t **out,
                   size_t *out_len, char *errstr, size_t errstr_size)
{
    int rc = -1;
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    size_t plen = 0;
    int len = 0;

    *out = NULL;
    *out_len = 0;
    if (n < CRYPTO_OVERHEAD) {
        snprintf(errstr, errstr_size, "ciphertext too short (%zu bytes, need at least %d)", n,
                 CRYPTO_OVERHEAD);
        goto out;
    }
    if (in[0] != CRYPTO_VERSION) {
        snprintf(errstr, errstr_size, "unsupported ciphertext version 0x%02x (expected 0x%02x)",
                 in[0], CRYPTO_VERSION);
        goto out;
    }
    if (n > (size_t)INT_MAX) {
        snprintf(errstr, errstr_size, "ciphertext too large (%zu bytes)", n);
        goto out;
    }
    plen = n - CRYPTO_OVERHEAD;
    const uint8_t *nonce = in + 1;
    const uint8_t *ct = nonce + CRYPTO_NONCE_LEN;
    buf = malloc(plen + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (!buf || !ctx) {
        snprintf(errstr, errstr_size, "out of memory decrypting %zu bytes", n);
        goto out;
    }
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, k->enc, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, buf, &len, ct, (int)plen) != 1 || (size_t)len != plen ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN, (void *)(ct + plen)) != 1) {
        snprintf(errstr, errstr_size, "aes-256-gcm decryption failed");
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, buf + len, &len) != 1) {
        snprintf(errstr, errstr_size,
                 "decryption failed: authentication tag mismatch (wrong key or tampered data)");
        goto out;
    }
    buf[plen] = '\0';
    *out = buf;
    *out_len = plen;
    buf = NULL;
    rc = 0;
out:
    if (buf) {
        OPENSSL_cleanse(buf, plen + 1);
        free(buf);
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* ------------------------------------------------------------ hashes */

void crypto_sha256(const void *d, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    if (EVP_Digest(n ? d : "", n, out, &len, EVP_sha256(), NULL) != 1)
        abort(); /* cannot happen with a built-in digest; nothing safe to return */
}

void crypto_hmac_sha256(const uint8_t *key, size_t keylen, const void *d, size_t n,
                        uint8_t out[32])
{
    unsigned int len = 32;
    static const uint8_t empty[1];
    if (!HMAC(EVP_sha256(), keylen ? key : empty, (int)keylen, n ? d : empty, n, out, &len))
        abort();
}

void crypto_random(uint8_t *buf, size_t n)
{
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(buf, chunk) != 1)
            abort(); /* no entropy: nothing safe to do */
        buf += chunk;
        n -= (size_t)chunk;
    }
}

/* ------------------------------------------------------------- UTF-8 */

/* Decode one character at s (n bytes left). Sets *len (>= 1) and returns
 * the code point, or -1 for a byte that does not start a valid sequence
 * (it is then treated as one opaque byte). */
static int32_t crypto_utf8_next(const unsigned char *s, size_t n, size_t *len)
{
    unsigned char c = s[0];
    size_t l;
    uint32_t cp;

    *len = 1;
    if (c < 0x80)
        return c;
    if ((c & 0xe0) == 0xc0) {
        l = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        l = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        l = 4;
        cp = c & 0x07;
    } else {
        return -1;
    }
    if (l > n)
        return -1;
    for (size_t i = 1; i < l; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *len = l;
    return (int32_t)cp;
}

static int crypto_is_digit(int32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 0xff10 && c <= 0xff19);
}

static int crypto_digit_val(int32_t c)
{
    return c >= 0xff10 ? c - 0xff10 : c - '0';
}

static int crypto_is_letter(int32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= 0xff21 && c <= 0xff3a) ||
           (c >= 0xff41 && c <= 0xff5a);
}

static int crypto_is_x(int32_t c)
{
    return c == 'X' || c == 'x' || c == 0xff38 || c == 0xff58;
}

/* ------------------------------------------------------------- phones */

int crypto_phone_normalize(const char *in, char *out, size_t out_size)
{
    int rc = -1;
    size_t n = in ? strlen(in) : 0;
    size_t d = 0;
    size_t skip = 0;

    if (!out || out_size == 0)
        return -1;
    out[0] = '\0';
    for (size_t i = 0; i < n;) {
        size_t l;
        int32_t c = crypto_utf8_next((const unsigned char *)in + i, n - i, &l);
        i += l;
        if (!crypto_is_digit(c))
            continue;
        if (d + 1 >= out_size)
            goto out;
        out[d++] = (char)('0' + crypto_digit_val(c));
    }
    out[d] = '\0';
    if (d == 15 && strncmp(out, "0086", 4) == 0 && out[4] == '1' && out[5] >= '3')
        skip = 4;
    else if (d == 13 && strncmp(out, "86", 2) == 0 && out[2] == '1' && out[3] >= '3')
        skip = 2;
    if (skip) {
        memmove(out, out + skip, d - skip + 1);
        d -= skip;
    }
    if (d < 5)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        out[0] = '\0';
    return rc;
}

void crypto_blind_index(const crypto_keys_t *k, const char *normalized_phone, uint8_t out[32])
{
    crypto_hmac_sha256(k->idx, sizeof(k->idx), normalized_phone, strlen(normalized_phone), out);
}

void crypto_mask_phone(const char *normalized, char *out, size_t out_size)
{
    size_t n = normalized ? strlen(normalized) : 0;
    size_t keep_head, keep_tail;
    size_t o = 0;

    if (!out || out_size == 0)
        return;
    if (n == 11) {
        keep_head = 3;
        keep_tail = 4;
    } else if (n >= 5) {
        keep_head = 2;
        keep_tail = 2;
    } else {
        keep_head = 0;
        keep_tail = 0;
        if (n == 0)
            n = 1;
    }
    for (size_t i = 0; i < n && o + 1 < out_size; i++) {
        if (i < keep_head || i >= n - keep_tail)
            out[o++] = normalized[i];
        else
            out[o++] = '*';
    }
    out[o] = '\0';
}

/* -------------------------------------------------------- text masking */

/* What happens to one character of the input. */
enum {
    CRYPTO_ACT_KEEP = 0, /* copy its bytes */
    CRYPTO_ACT_STAR,     /* write '*' instead */
    CRYPTO_ACT_DROP,     /* write nothing (e-mail local part) */
    CRYPTO_ACT_AT,       /* write "***" then the character (the e-mail '@') */
};

typedef struct crypto_unit {
    uint32_t off; /* byte offset in the input (inputs are < 4 GiB) */
    int32_t cp;   /* code point, -1 for an invalid byte */
    uint8_t len;  /* bytes of this character, 1-4 */
    uint8_t act;  /* CRYPTO_ACT_* */
    uint8_t mail; /* 1 if part of an e-mail address (digit rules skip it) */
} crypto_unit_t;

typedef struct crypto_text {
    crypto_unit_t *u;
    size_t n;
} crypto_text_t;

static int32_t crypto_cp(const crypto_text_t *t, size_t i)
{
    return i < t->n && !t->u[i].mail ? t->u[i].cp : -2;
}

static int crypto_digit_at(const crypto_text_t *t, size_t i)
{
    return crypto_is_digit(crypto_cp(t, i));
}

/* True if a unit is a letter or belongs to an e-mail (both stop a landline). */
static int crypto_wordish_at(const crypto_text_t *t, size_t i)
{
    return i < t->n && (t->u[i].mail || crypto_is_letter(t->u[i].cp));
}

static int crypto_mail_local_char(int32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static int crypto_mail_domain_char(int32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-';
}

/* Rule 1: mark the e-mail address around the '@' at unit at, if any. */
static void crypto_mark_mail(crypto_text_t *t, size_t at)
{
    size_t ls = at, de = at + 1;
    size_t labels = 1, label_len = 0;

    while (ls > 0 && !t->u[ls - 1].mail && crypto_mail_local_char(t->u[ls - 1].cp))
        ls--;
    while (ls < at && t->u[ls].cp == '.')
        ls++;
    if (ls == at)
        return;
    while (de < t->n && crypto_mail_domain_char(t->u[de].cp))
        de++;
    while (de > at + 1 && (t->u[de - 1].cp == '.' || t->u[de - 1].cp == '-'))
        de--;
    if (de == at + 1)
        return;
    for (size_t i = at + 1; i < de; i++) {
        if (t->u[i].cp == '.') {
            if (label_len == 0)
                return;
            labels++;
            label_len = 0;
        } else {
            label_len++;
        }
    }
    if (labels < 2 || label_len == 0)
        return;
    for (size_t i = ls; i < de; i++)
        t->u[i].mail = 1;
    for (size_t i = ls + 1; i < at; i++)
        t->u[i].act = CRYPTO_ACT_DROP;
    t->u[at].act = CRYPTO_ACT_AT;
}

/* Star digit number [from, to) of a chain of digit runs (digits counted
 * across runs, separators skipped). */
static void crypto_star_digits(crypto_text_t *t, size_t s, size_t e, size_t from, size_t to)
{
    size_t k = 0;
    for (size_t i = s; i < e; i++) {
        if (!crypto_is_digit(t->u[i].cp))
            continue;
        if (k >= from && k < to)
            t->u[i].act = CRYPTO_ACT_STAR;
        k++;
    }
}

/* Digit value of digit number k of the chain starting at unit s. */
static int crypto_chain_digit(const crypto_text_t *t, size_t s, size_t e, size_t k)
{
    for (size_t i = s; i < e; i++) {
        if (!crypto_is_digit(t->u[i].cp))
            continue;
        if (k-- == 0)
            return crypto_digit_val(t->u[i].cp);
    }
    return -1;
}

static int crypto_mobile_at(const crypto_text_t *t, size_t s, size_t e, size_t k)
{
    int d0 = crypto_chain_digit(t, s, e, k), d1 = crypto_chain_digit(t, s, e, k + 1);
    return d0 == 1 && d1 >= 3 && d1 <= 9;
}

/* Rule 6's neighbour test for the digits spanning units [s, e). */
static int crypto_landline_ok(const crypto_text_t *t, size_t s, size_t e)
{
    if (s > 0) {
        if (crypto_wordish_at(t, s - 1))
            return 0;
        if (crypto_cp(t, s - 1) == '.' && s > 1 && crypto_digit_at(t, s - 2))
            return 0;
    }
    if (crypto_wordish_at(t, e))
        return 0;
    if (crypto_cp(t, e) == '.' && crypto_digit_at(t, e + 1))
        return 0;
    return 1;
}

#define CRYPTO_MAX_GROUPS 3

/* Rule 2: a separated phone number starting with the digit run [s, e).
 * @returns the unit after the match, or 0 if there is none. */
static size_t crypto_mask_separated(crypto_text_t *t, size_t s, size_t e)
{
    size_t gs[CRYPTO_MAX_GROUPS], ge[CRYPTO_MAX_GROUPS];
    size_t ng = 0;

    gs[0] = s;
    ge[0] = e;
    ng = 1;
    while (ng < CRYPTO_MAX_GROUPS) {
        size_t p = ge[ng - 1];
        int32_t sep = crypto_cp(t, p);
        if ((sep != '-' && sep != ' ') || !crypto_digit_at(t, p + 1))
            break;
        gs[ng] = p + 1;
        ge[ng] = p + 1;
        while (crypto_digit_at(t, ge[ng]))
            ge[ng]++;
        ng++;
    }
    for (size_t k = ng; k >= 2; k--) {
        size_t total = 0, rest = 0;
        int runs_ok = 1;
        for (size_t g = 0; g < k; g++) {
            size_t len = ge[g] - gs[g];
            total += len;
            if (g > 0)
                rest += len;
            if (len < 3 || len > 8)
                runs_ok = 0;
        }
        if (!runs_ok)
            continue;
        size_t s0 = gs[0], end = ge[k - 1];
        if (total == 11 && crypto_mobile_at(t, s0, end, 0)) {
            crypto_star_digits(t, s0, end, 3, 7);
            return end;
        }
        size_t area = ge[0] - gs[0];
        if (area <= 4 && crypto_chain_digit(t, s0, end, 0) == 0 &&
            crypto_chain_digit(t, s0, end, 1) != 0 && rest >= 7 && rest <= 8 &&
            crypto_landline_ok(t, s0, end)) {
            crypto_star_digits(t, s0, end, 0, total - 2);
            return end;
        }
    }
    return 0;
}

/* Rules 3, 4 and 6 for the single digit run [s, e). */
static void crypto_mask_run(crypto_text_t *t, size_t s, size_t e)
{
    size_t len = e - s;

    if (len == 11 && crypto_mobile_at(t, s, e, 0)) {
        crypto_star_digits(t, s, e, 3, 7);
    } else if (len == 13 && crypto_chain_digit(t, s, e, 0) == 8 &&
               crypto_chain_digit(t, s, e, 1) == 6 && crypto_mobile_at(t, s, e, 2)) {
        crypto_star_digits(t, s, e, 5, 9);
    } else if (len == 15 && crypto_chain_digit(t, s, e, 0) == 0 &&
               crypto_chain_digit(t, s, e, 1) == 0 && crypto_chain_digit(t, s, e, 2) == 8 &&
               crypto_chain_digit(t, s, e, 3) == 6 && crypto_mobile_at(t, s, e, 4)) {
        crypto_star_digits(t, s, e, 7, 11);
    } else if (len == 18) {
        crypto_star_digits(t, s, e, 6, 14);
    } else if (len == 17 && crypto_is_x(crypto_cp(t, e)) && !crypto_digit_at(t, e + 1) &&
               !crypto_wordish_at(t, e + 1)) {
        crypto_star_digits(t, s, e, 6, 14);
    } else if (((len >= 7 && len <= 10) ||
                (len >= 11 && len <= 12 && crypto_chain_digit(t, s, e, 0) == 0)) &&
               crypto_landline_ok(t, s, e)) {
        crypto_star_digits(t, s, e, 0, len - 2);
    }
}

char *crypto_mask_text(const char *utf8)
{
    char *res = NULL;
    crypto_text_t t = {NULL, 0};
    strbuf_t b;
    size_t n;

    if (!utf8)
        return NULL;
    n = strlen(utf8);
    if (n >= UINT32_MAX)
        goto out;
    t.u = calloc(n ? n : 1, sizeof(*t.u));
    if (!t.u)
        goto out;
    for (size_t i = 0; i < n;) {
        size_t l;
        int32_t c = crypto_utf8_next((const unsigned char *)utf8 + i, n - i, &l);
        t.u[t.n].off = (uint32_t)i;
        t.u[t.n].len = (uint8_t)l;
        t.u[t.n].cp = c;
        t.n++;
        i += l;
    }

    for (size_t i = 0; i < t.n; i++)
        if (t.u[i].cp == '@' && !t.u[i].mail)
            crypto_mark_mail(&t, i);

    for (size_t i = 0; i < t.n;) {
        if (!crypto_digit_at(&t, i)) {
            i++;
            continue;
        }
        size_t s = i, e = i;
        while (crypto_digit_at(&t, e))
            e++;
        size_t end = crypto_mask_separated(&t, s, e);
        if (end) {
            i = end;
            continue;
        }
        crypto_mask_run(&t, s, e);
        i = e;
    }

    strbuf_init(&b);
    for (size_t i = 0; i < t.n; i++) {
        const crypto_unit_t *u = &t.u[i];
        switch (u->act) {
        case CRYPTO_ACT_STAR:
            strbuf_append(&b, "*", 1);
            break;
        case CRYPTO_ACT_DROP:
            break;
        case CRYPTO_ACT_AT:
            strbuf_append(&b, "***", 3);
            strbuf_append(&b, utf8 + u->off, u->len);
            break;
        default:
            strbuf_append(&b, utf8 + u->off, u->len);
        }
    }
    res = b.s;
out:
    free(t.u);
    return res;
}
