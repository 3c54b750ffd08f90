/*
 * crypto: protection of complainants' personal data (PII).
 *
 * Contact data (phone, e-mail, name, ID number) is stored encrypted with
 * AES-256-GCM under one 32-byte key taken from the environment or a key
 * file. Repeat-caller lookup uses a blind index: an HMAC-SHA256 of the
 * normalised phone number under a second key derived from the first, so
 * the database can match equal numbers without holding them in clear.
 * Responses show phone numbers masked (138****1234), and free text is
 * masked before it leaves intake in any event (crypto_mask_text).
 *
 * Ciphertext format (version 1), binary:
 *   0x01 || nonce (12 random bytes) || ciphertext || GCM tag (16 bytes)
 * No associated data. A new version byte is how a future key rotation or
 * algorithm change is told apart.
 */
#ifndef KESU_CRYPTO_H
#define KESU_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_VERSION   0x01
#define CRYPTO_NONCE_LEN 12
#define CRYPTO_TAG_LEN   16
/** Bytes a ciphertext adds to its plaintext (version + nonce + tag). */
#define CRYPTO_OVERHEAD (1 + CRYPTO_NONCE_LEN + CRYPTO_TAG_LEN)

/** The process's PII keys; wipe with crypto_keys_wipe when done. */
typedef struct crypto_keys {
    uint8_t enc[32]; /**< AES-256-GCM key, exactly as configured */
    uint8_t idx[32]; /**< blind-index key = HMAC-SHA256(enc, "kesu-blind-index-v1") */
} crypto_keys_t;

/**
 * @brief Load the PII keys from a spec: either 64 hex characters (the
 * AES-256 key itself) or "file:/path" naming a file that holds the 64 hex
 * characters (surrounding whitespace ignored). Derives the index key.
 * The key never appears in an error message.
 * @returns 0, or -1 with the reason in errstr (k is then zeroed).
 */
int crypto_keys_load(crypto_keys_t *k, const char *spec, char *errstr, size_t errstr_size);

/** @brief Overwrite both keys with zeros (OPENSSL_cleanse). @returns nothing. */
void crypto_keys_wipe(crypto_keys_t *k);

/**
 * @brief Encrypt n bytes with AES-256-GCM under k->enc and a fresh random
 * nonce. *out (malloc'd, caller frees) gets n + CRYPTO_OVERHEAD bytes in
 * the version-1 format above.
 * @returns 0, or -1 with errstr set (*out is then NULL).
 */
int crypto_encrypt(const crypto_keys_t *k, const uint8_t *plain, size_t n, uint8_t **out,
                   size_t *out_len, char *errstr, size_t errstr_size);

/**
 * @brief Decrypt and authenticate a version-1 ciphertext. *out (malloc'd,
 * caller frees) gets the plaintext plus a NUL terminator that *out_len
 * does not count, so text can be used as a C string directly.
 * @returns 0, or -1 with errstr set: too short, unknown version, or
 * "authentication failed" for a wrong key or tampered data (*out is NULL).
 */
int crypto_decrypt(const crypto_keys_t *k, const uint8_t *in, size_t n, uint8_t **out,
                   size_t *out_len, char *errstr, size_t errstr_size);

/** @brief SHA-256 of n bytes into out. @returns nothing. */
void crypto_sha256(const void *d, size_t n, uint8_t out[32]);

/** @brief HMAC-SHA256 of n bytes under key into out. @returns nothing. */
void crypto_hmac_sha256(const uint8_t *key, size_t keylen, const void *d, size_t n,
                        uint8_t out[32]);

/** @brief Fill buf with n bytes from OpenSSL's CSPRNG (aborts if it fails). @returns nothing. */
void crypto_random(uint8_t *buf, size_t n);

/**
 * @brief Normalise a phone number for the blind index: keep only the digits
 * (ASCII or full-width ０-９, written as ASCII), then drop a leading "0086"
 * or "86" country code when what follows is an 11-digit mobile number
 * (1[3-9] and 9 more digits). "+86 138-1234-1234" -> "13812341234",
 * "010-8888 6666" -> "01088886666".
 * @returns 0, or -1 if fewer than 5 digits remain or out_size is too small
 * (out is then "").
 */
int crypto_phone_normalize(const char *in, char *out, size_t out_size);

/**
 * @brief Blind index of a normalised phone number:
 * HMAC-SHA256(k->idx, normalized_phone). @returns nothing.
 */
void crypto_blind_index(const crypto_keys_t *k, const char *normalized_phone, uint8_t out[32]);

/**
 * @brief Mask a normalised phone number for display: 11 digits keep the
 * first 3 and last 4 ("138****1234"); 5 or more digits keep the first 2 and
 * last 2 with stars between; fewer than 5 characters become all stars (at
 * least one). Output is truncated to fit out_size.
 * @returns nothing.
 */
void crypto_mask_phone(const char *normalized, char *out, size_t out_size);

/**
 * @brief Mask personal data in free text (complaint titles, descriptions,
 * progress notes) before the text goes into any event or log.
 *
 * A "digit" is 0-9 or a full-width ０-９; a "letter" is A-Z/a-z or a
 * full-width Ａ-Ｚ/ａ-ｚ. A digit run is a maximal run of digits. Everything
 * that is not a digit - letters, punctuation, Chinese text, invalid
 * UTF-8 bytes - is copied through byte for byte; only digit characters are
 * replaced by '*' (and e-mail local parts, below), so no multibyte
 * character is ever split. The rules, applied left to right:
 *
 *  1. E-mail: local part [A-Za-z0-9._%+-]+ (no leading '.'), '@', domain
 *     of labels [A-Za-z0-9-]+ joined by '.' with at least two labels
 *     (trailing '.'/'-' not included). Output: first character of the local
 *     part + "***@" + domain ("zhang.san@qq.com" -> "z***@qq.com"). Digits
 *     inside an e-mail are left to this rule.
 *  2. Separated phone number: 2 or 3 digit runs joined by single '-' or ' '
 *     characters, where either the runs together form an 11-digit mobile
 *     number (each run 3-8 digits: "138-1234-5678", "138 1234 5678") or
 *     the first run is an area code of 3-4 digits, 0[1-9]..., and the
 *     other runs (3-8 digits each) have 7-8 digits together
 *     ("010-12345678", "0755 1234 5678"). The digits are masked as rule 3
 *     (mobile) or rule 6 (landline, which also needs rule 6's neighbours)
 *     would mask the joined number; separators are kept ("138-****-5678",
 *     "***-******78"). The longest match (3 runs, then 2) wins.
 *  3. Mobile: a digit run of exactly 11 digits starting with 1[3-9]:
 *     keep first 3 and last 4 ("138****1234"). Also a 13-digit run
 *     "86"+mobile or a 15-digit run "0086"+mobile (the country code is
 *     kept: "+86138****1234").
 *  4. ID number: a digit run of exactly 18 digits, or of 17 digits directly
 *     followed by X/x that is not itself followed by a letter or digit:
 *     keep first 6 and last 4 ("110105********0021", "...002X").
 *  5. Rules 3 and 4 apply whatever the neighbours are (a mobile number
 *     glued to letters, "A13812341234", is still masked); rules 2-4 need
 *     the exact length, so a longer run (an order or card number, or any
 *     run over 18 digits) is never partly masked by them.
 *  6. Landline: a digit run of 7-10 digits, or 11-12 digits starting with
 *     0 (area code + number written together), that touches no letter on
 *     either side and is not part of a decimal number (a '.' between it
 *     and another digit): keep the last 2 digits ("******34").
 *     "A12345678901" (order number) and "3.1415926" stay as they are.
 *
 * Not masked: runs of 1-6 digits, 13-17 digits (except rule 3's +86
 * forms), more than 18 digits, 15-digit first-generation ID numbers.
 * @returns a malloc'd NUL-terminated string the caller frees, or NULL if
 * utf8 is NULL or memory runs out.
 */
char *crypto_mask_text(const char *utf8);

#endif
