/*
 * util: small helpers every module needs: time, UUIDs, random codes, a
 * growable string buffer.
 */
#ifndef KESU_UTIL_H
#define KESU_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* China time (Asia/Shanghai), the time zone of the statistics' and the
 * archive's days and of the times kesuctl prints: UTC+8 all year, no
 * daylight saving since 1991 */
#define UTIL_CHINA_TZ_OFFSET_S (8 * 3600)

/** @brief Wall-clock time in Unix milliseconds. */
int64_t util_now_ms(void);

/** @brief Monotonic time in milliseconds (for timeouts and latencies). */
int64_t util_mono_ms(void);

/**
 * @brief Write a time-ordered UUID (version 7, RFC 9562: 48 bits of Unix
 *        milliseconds, then 74 random bits), 36 chars + NUL, into out[37].
 *        Case, complainant and event ids are keys of B-tree indexes that
 *        take thousands of inserts a second: ids that grow with time go to
 *        the right edge of each index instead of a random leaf page each.
 */
void util_uuid(char out[37]);

/** @brief The Unix milliseconds in a version 7 UUID, or -1 if s is not one. */
int64_t util_uuid_ms(const char *s);

/** @brief 1 if s is a canonical lower- or upper-case UUID. */
int util_is_uuid(const char *s);

/** @brief n random characters from alphabet into out (NUL-terminated, out has n+1). */
void util_random_code(char *out, size_t n, const char *alphabet);

/** @brief Format Unix ms as RFC 3339 UTC ("2026-12-01T08:00:00.123Z"). */
void util_fmt_time(int64_t ms, char *out, size_t out_size);

/** @brief 1 if the n bytes at s are valid UTF-8 without NUL bytes. */
int util_utf8_valid(const char *s, size_t n);

/** @brief Offset of the first byte that is not valid UTF-8 (or a NUL); n if there is none. */
size_t util_utf8_bad_offset(const char *s, size_t n);

/** @brief Sleep for ms milliseconds (interrupted early by signals). */
void util_sleep_ms(int ms);

/** @brief Lower-case hex of n bytes into out (2n+1). */
void util_hex(const uint8_t *in, size_t n, char *out);

/** @brief Parse hex into out; @returns number of bytes or -1. */
int util_unhex(const char *hex, uint8_t *out, size_t out_size);

/**
 * @brief Room for at least `need` items of `size` bytes in an array of
 *        capacity *cap: doubled (from `first`) until it fits.
 * @returns the array to use (items itself when it fits already, *cap as it
 *          was), or NULL out of memory (items and *cap unchanged).
 */
void *util_grow(void *items, size_t *cap, size_t need, size_t size, size_t first);

/** @brief A growable NUL-terminated buffer. */
typedef struct strbuf {
    char *s;    /**< always NUL-terminated once strbuf_init ran */
    size_t len; /**< bytes used, not counting NUL */
    size_t cap; /**< bytes allocated */
} strbuf_t;

void strbuf_init(strbuf_t *b);
void strbuf_append(strbuf_t *b, const char *s, size_t n);
void strbuf_appendf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_free(strbuf_t *b);

#endif
