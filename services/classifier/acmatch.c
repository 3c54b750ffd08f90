/*
 * acmatch: see acmatch.h. Built in two steps: a trie of the patterns (edges
 * as a full table over the compressed alphabet), then a breadth-first pass
 * that fills the failure transitions into the same table and links each
 * state to the next state on its failure chain that ends a pattern.
 */
#include "acmatch.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct ac_pat {
    uint32_t id;
    int flags;
    uint32_t len;
    int32_t next; /* next pattern ending in the same state, -1 */
} ac_pat_t;

struct acmatch {
    uint8_t cls[256]; /* byte -> alphabet class, 0 = not in any pattern */
    unsigned ncls;    /* classes in use, including 0 */
    char **src;       /* patterns before build */
    ac_pat_t *pats;   /* patterns */
    size_t npats, cap;
    int32_t *delta;    /* states x ncls transitions (after build) */
    int32_t *first;    /* first pattern ending in the state, -1 */
    int32_t *out_link; /* next state on the failure chain with a pattern, -1 */
    size_t nstates;
    int built;
};

static unsigned char ac_fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

acmatch_t *acmatch_new(void)
{
    acmatch_t *ac = calloc(1, sizeof(*ac));
    if (ac)
        ac->ncls = 1;
    return ac;
}

int acmatch_add(acmatch_t *ac, const char *pattern, uint32_t id, int flags)
{
    if (ac->built || !pattern || !*pattern)
        return -1;
    if (ac->npats == ac->cap) {
        size_t cap = ac->cap ? ac->cap * 2 : 256;
        ac_pat_t *p = realloc(ac->pats, cap * sizeof(*p));
        if (!p)
            return -1;
        ac->pats = p;
        char **s = realloc(ac->src, cap * sizeof(*s));
        if (!s)
            return -1;
        ac->src = s;
        ac->cap = cap;
    }
    char *copy = strdup(pattern);
    if (!copy)
        return -1;
    for (unsigned char *p = (unsigned char *)copy; *p; p++) {
        *p = ac_fold(*p);
        if (!ac->cls[*p])
            ac->cls[*p] = (uint8_t)ac->ncls++;
    }
    ac->src[ac->npats] = copy;
    ac->pats[ac->npats] = (ac_pat_t){id, flags, (uint32_t)strlen(copy), -1};
    ac->npats++;
    return 0;
}

int acmatch_build(acmatch_t *ac)
{
    size_t maxst = 1, C, head = 0, tail = 0;
    int32_t *fail = NULL, *queue = NULL;
    int rc = -1;
    if (ac->built)
        return -1;
    for (unsigned c = 'A'; c <= 'Z'; c++)
        ac->cls[c] = ac->cls[c + 32];
    C = ac->ncls;
    for (size_t i = 0; i < ac->npats; i++)
        maxst += ac->pats[i].len;
    ac->delta = malloc(maxst * C * sizeof(int32_t));
    ac->first = malloc(maxst * sizeof(int32_t));
    ac->out_link = malloc(maxst * sizeof(int32_t));
    fail = calloc(maxst, sizeof(int32_t));
    queue = malloc(maxst * sizeof(int32_t));
    if (!ac->delta || !ac->first || !ac->out_link || !fail || !queue)
        goto out;
    memset(ac->delta, -1, maxst * C * sizeof(int32_t));
    memset(ac->first, -1, maxst * sizeof(int32_t));
    ac->nstates = 1;
    for (size_t i = 0; i < ac->npats; i++) {
        int32_t s = 0;
        for (const unsigned char *p = (unsigned char *)ac->src[i]; *p; p++) {
            int32_t *t = &ac->delta[(size_t)s * C + ac->cls[*p]];
            if (*t < 0)
                *t = (int32_t)ac->nstates++;
            s = *t;
        }
        ac->pats[i].next = ac->first[s];
        ac->first[s] = (int32_t)i;
    }
    /* root: missing edges loop back to the root */
    for (size_t c = 0; c < C; c++) {
        int32_t *t = &ac->delta[c];
        if (*t < 0 || c == 0) {
            *t = 0;
        } else {
            fail[*t] = 0;
            queue[tail++] = *t;
        }
    }
    ac->out_link[0] = -1;
    while (head < tail) {
        int32_t s = queue[head++];
        int32_t f = fail[s];
        ac->out_link[s] = ac->first[f] >= 0 ? f : ac->out_link[f];
        for (size_t c = 0; c < C; c++) {
            int32_t *t = &ac->delta[(size_t)s * C + c];
            if (*t < 0 || c == 0) {
                *t = ac->delta[(size_t)f * C + c];
            } else {
                fail[*t] = ac->delta[(size_t)f * C + c];
                queue[tail++] = *t;
            }
        }
    }
    for (size_t i = 0; i < ac->npats; i++)
        free(ac->src[i]);
    free(ac->src);
    ac->src = NULL;
    ac->built = 1;
    rc = 0;
out:
    free(fail);
    free(queue);
    return rc;
}

static int ac_alnum(const char *text, size_t len, size_t i)
{
    return i < len && isalnum((unsigned char)text[i]);
}

size_t acmatch_scan(const acmatch_t *ac, const char *text, size_t len, acmatch_fn fn, void *arg)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t C = ac->ncls, n = 0;
    int32_t s = 0;
    if (!ac->built || !text)
        return 0;
    for (size_t i = 0; i < len; i++) {
        s = ac->delta[(size_t)s * C + ac->cls[t[i]]];
        for (int32_t st = ac->first[s] >= 0 ? s : ac->out_link[s]; st >= 0; st = ac->out_link[st]) {
            for (int32_t p = ac->first[st]; p >= 0; p = ac->pats[p].next) {
                const ac_pat_t *pt = &ac->pats[p];
                size_t start = i + 1 - pt->len;
                if ((pt->flags & ACMATCH_WORD_START) && start > 0 && ac_alnum(text, len, start - 1))
                    continue;
                if ((pt->flags & ACMATCH_WORD_END) && ac_alnum(text, len, i + 1))
                    continue;
                n++;
                if (fn(arg, pt->id, start, i + 1))
                    return n;
            }
        }
    }
    return n;
}

size_t acmatch_states(const acmatch_t *ac)
{
    return ac->nstates;
}

void acmatch_free(acmatch_t *ac)
{
    if (!ac)
        return;
    if (ac->src)
        for (size_t i = 0; i < ac->npats; i++)
            free(ac->src[i]);
    free(ac->src);
    free(ac->pats);
    free(ac->delta);
    free(ac->first);
    free(ac->out_link);
    free(ac);
}
