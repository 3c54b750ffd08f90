/*
 * textfeat: character n-grams (Han) and words (Latin) hashed into buckets.
 * See textfeat.h. The kinds are seeded differently so that the bigram of
 * two characters never lands on purpose where a word or unigram does.
 */
#include "textfeat.h"

enum { FT_UNI = 1, FT_BI = 2, FT_TRI = 3, FT_WORD = 4, FT_WBI = 5 };

uint64_t textfeat_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

int textfeat_is_han(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FA1F);
}

uint32_t textfeat_next_cp(const unsigned char *s, size_t len, size_t *adv)
{
    uint32_t cp;
    size_t need;
    unsigned char c = s[0];
    if (c < 0x80) {
        *adv = 1;
        return (c >= 'A' && c <= 'Z') ? (uint32_t)(c + 32) : c;
    }
    if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F;
        need = 2;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F;
        need = 3;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07;
        need = 4;
    } else {
        *adv = 1;
        return 0xFFFD;
    }
    if (need > len) {
        *adv = 1;
        return 0xFFFD;
    }
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *adv = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *adv = need;
    if (cp >= 0xFF01 && cp <= 0xFF5E) { /* full-width ASCII */
        cp -= 0xFEE0;
        if (cp >= 'A' && cp <= 'Z')
            cp += 32;
    }
    return cp;
}

static inline uint32_t ft_bucket(uint64_t h, unsigned bits)
{
    return (uint32_t)(textfeat_mix64(h) >> (64 - bits));
}

static inline void ft_put(uint32_t *ids, size_t *n, size_t cap, uint32_t id)
{
    if (*n < cap)
        ids[(*n)++] = id;
}

size_t textfeat_extract(const char *text, unsigned bits, uint32_t *ids, size_t *n, size_t cap)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t start = *n, len, i = 0, adv;
    uint32_t h1 = 0, h2 = 0; /* the previous two Han characters of the run (0: none) */
    uint64_t word = 0, prev_word = 0;
    int in_word = 0;
    if (!text)
        return 0;
    for (len = 0; s[len]; len++)
        ;
    while (i <= len && *n < cap) {
        uint32_t cp = i < len ? textfeat_next_cp(s + i, len - i, &adv) : 0;
        if (i >= len)
            adv = 1;
        int letter = cp >= 'a' && cp <= 'z';
        if (letter) {
            if (!in_word) {
                word = 1469598103934665603ull; /* FNV-1a offset basis */
                in_word = 1;
            }
            word = (word ^ cp) * 1099511628211ull;
        } else if (in_word) {
            in_word = 0;
            ft_put(ids, n, cap, ft_bucket(word ^ ((uint64_t)FT_WORD << 56), bits));
            if (prev_word)
                ft_put(ids, n, cap,
                       ft_bucket((prev_word * 31 + word) ^ ((uint64_t)FT_WBI << 56), bits));
            prev_word = word;
        }
        if (textfeat_is_han(cp)) {
            ft_put(ids, n, cap, ft_bucket((uint64_t)cp | ((uint64_t)FT_UNI << 56), bits));
            if (h1)
                ft_put(
                    ids, n, cap,
                    ft_bucket((uint64_t)cp | ((uint64_t)h1 << 21) | ((uint64_t)FT_BI << 56), bits));
            if (h2)
                ft_put(ids, n, cap,
                       ft_bucket(textfeat_mix64((uint64_t)cp | ((uint64_t)h1 << 21) |
                                                ((uint64_t)h2 << 42)) ^
                                     ((uint64_t)FT_TRI << 56),
                                 bits));
            h2 = h1;
            h1 = cp;
            prev_word = 0; /* a Han character separates Latin words */
        } else {
            h1 = h2 = 0;
            /* spaces keep a word bigram together; anything else but a letter breaks it */
            if (!letter && cp != ' ')
                prev_word = 0;
        }
        i += adv;
    }
    return *n - start;
}
