/*
 * dedup: near-duplicate cases (并单 candidates) and hotspots (共性问题).
 *
 * A case's fingerprint is a 64-bit SimHash over the character 2- and 3-shingles of
 * its masked title and body (Han characters, letters and digits; the rest
 * only separates). Two texts that say nearly the same thing differ in few
 * bits. A new case is compared with the open cases of the same district
 * received within the duplicate window: the nearest one within
 * dup_distance bits makes it a duplicate, linked to that case's master.
 * When at least hotspot_k cases (the new one included) within
 * similar_distance bits arrived in the district within the hotspot window,
 * a hotspot is raised once per district, domain and window: a row in
 * hotspots and a HotspotDetected event in the master case's history.
 */
#ifndef KESU_DEDUP_H
#define KESU_DEDUP_H

#include <stdint.h>

#include "pg.h"

/** Settings (classifier.* keys in main.c). */
typedef struct dedup_opts {
    int dup_distance;          /**< at most this many differing bits: a duplicate (0..64) */
    int similar_distance;      /**< at most this many: similar, for hotspots (>= dup_distance) */
    int64_t dup_window_ms;     /**< how far back duplicates are looked for */
    int hotspot_k;             /**< similar cases in a district that make a hotspot (0: off) */
    int64_t hotspot_window_ms; /**< the window T */
} dedup_opts_t;

/** What dedup_check found. */
typedef struct dedup_result {
    char duplicate_of[37];   /**< master case id, "" if not a duplicate */
    int distance;            /**< bits to the nearest open case (65 if none) */
    int similar;             /**< similar cases within the hotspot window, this one included */
    int hotspot;             /**< 1 if this case raised a hotspot (row inserted) */
    char hotspot_master[37]; /**< case whose history gets HotspotDetected */
    int64_t window_start_ms; /**< start of the hotspot window */
} dedup_result_t;

/** A duplicate link decided in the open batch and not written yet. */
typedef struct dedup_link {
    char case_id[37];
    char master[37];
    int distance;
} dedup_link_t;

/** A case of a fast attempt, searched with the rest of its batch at the claim. */
typedef struct dedup_judged {
    char case_id[37];
    uint64_t simhash;
    dedup_result_t r;        /**< the search's answer (hotspot still to be decided) */
    char oldest_similar[37]; /**< master of the oldest similar case, "" if none */
    int taken;               /**< 1 once dedup_check has used it */
} dedup_judged_t;

/**
 * What a fast attempt keeps of its duplicate search for statements over the
 * whole batch (decisions 0044, 0046): the search of every new case at the
 * batch's claim (dedup_batch_search: one statement; a case compared with the
 * batch's earlier cases in C), the fingerprints and duplicate links written
 * at its end (dedup_batch_write: one statement). A later case of the batch
 * whose nearest is one of those cases takes that case's master from here, as
 * it would from case_duplicates. gather 0 (a careful re-run): dedup_check
 * searches and writes each event's own, so that a savepoint undoes them.
 */
typedef struct dedup_batch {
    dedup_link_t *v; /**< the links */
    size_t n, cap;
    dedup_judged_t *j; /**< the cases searched at the claim, in batch order */
    size_t nj, capj, next;
    pg_rows_t fp; /**< the fingerprints to write: case, district, domain, simhash */
    int gather;
} dedup_batch_t;

/** @brief Forget what was kept; gather from now on or not. @returns 0, -1 out of memory. */
int dedup_batch_reset(dedup_batch_t *b, int gather);
/** @brief Write the kept fingerprints and links in one statement and forget them. @returns 0 or -1 (errstr). */
int dedup_batch_write(pg_t *pg, dedup_batch_t *b, char *errstr, size_t errstr_size);
/** @brief Free the batch's memory. */
void dedup_batch_free(dedup_batch_t *b);

/** One new case of a batch for dedup_batch_search. */
typedef struct dedup_query {
    const char *case_id;
    const char *district; /**< "" or NULL: not searched (nothing to compare with) */
    const char *title, *body;
} dedup_query_t;

/**
 * @brief A gathering batch's claim: search every case of q (in the order the
 *        handlers will run) in one statement, each also compared with the
 *        cases of q before it in the same district, and keep the answers for
 *        dedup_check. Nothing is written. @returns 0 or -1 (errstr; pg->sqlstate
 *        set, or not set: out of memory).
 */
int dedup_batch_search(pg_t *pg, const dedup_opts_t *o, dedup_batch_t *b, const dedup_query_t *q,
                       size_t n, char *errstr, size_t errstr_size);

/** @brief SimHash of title + body (either may be NULL). Allocates nothing. */
uint64_t dedup_simhash(const char *title, const char *body);

/** @brief Hamming distance of two fingerprints. */
int dedup_distance(uint64_t a, uint64_t b);

/**
 * @brief Inside the caller's transaction: store the case's fingerprint
 *        (SimHash of title and body), find its master among open cases,
 *        record the duplicate link, and insert the hotspot row when this case
 *        completes one. With a gathering batch (b not NULL, gather set) the
 *        search kept at the claim is used when there is one, and the
 *        fingerprint and link are kept for dedup_batch_write; otherwise they
 *        are searched and written now.
 * @returns 0 or -1 with errstr (pg->sqlstate set; not set: out of memory).
 */
int dedup_check(pg_t *pg, const dedup_opts_t *o, dedup_batch_t *b, const char *case_id,
                const char *district, const char *domain, const char *title, const char *body,
                dedup_result_t *out, char *errstr, size_t errstr_size);

#endif
