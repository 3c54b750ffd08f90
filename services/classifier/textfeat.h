/*
 * textfeat: text -> hashed feature ids, the input of every model.
 *
 * Chinese needs no word segmenter: a run of Han characters yields its
 * character unigrams, bigrams and trigrams; a run of Latin letters yields
 * lower-cased words and word bigrams (digits, punctuation, the '*' of masked
 * numbers and everything else only separate). Full-width ASCII is folded to
 * ASCII first. Each n-gram is hashed (64-bit mix, n-gram kind in the seed)
 * into 2^bits buckets, so the model never stores a vocabulary.
 *
 * The extractor writes into a caller's buffer and allocates nothing: the
 * live path calls it once per message with a buffer kept per thread.
 */
#ifndef KESU_TEXTFEAT_H
#define KESU_TEXTFEAT_H

#include <stddef.h>
#include <stdint.h>

#define TEXTFEAT_MIN_BITS 10
#define TEXTFEAT_MAX_BITS 24

/**
 * @brief Append the hashed features of text (NULL or empty is fine) to
 *        ids[*n..cap): stops quietly when the buffer is full, so a huge
 *        message costs at most cap features.
 * @returns the number of features this call appended.
 */
size_t textfeat_extract(const char *text, unsigned bits, uint32_t *ids, size_t *n, size_t cap);

/** @brief The 64-bit mix used for hashing (splitmix64 finaliser); also for SimHash shingles. */
uint64_t textfeat_mix64(uint64_t x);

/**
 * @brief Decode one UTF-8 code point at s (len bytes available), folding
 *        full-width ASCII (U+FF01..U+FF5E) to ASCII and ASCII letters to lower case.
 *        *adv receives the bytes consumed (>= 1; an invalid byte is U+FFFD, 1 byte).
 * @returns the code point.
 */
uint32_t textfeat_next_cp(const unsigned char *s, size_t len, size_t *adv);

/** @brief 1 for a Han (CJK ideograph) code point. */
int textfeat_is_han(uint32_t cp);

#endif
