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

/**
 * The duplicate links of a fast attempt, kept for one statement at its end
 * (dedup_links_write; decision 0044). A later case of the batch whose
 * nearest is one of those cases takes that case's master from here, as it
 * would from case_duplicates. gather 0: dedup_check writes each link itself.
 */
typedef struct dedup_links {
    dedup_link_t *v;
    size_t n, cap;
    int gather;
} dedup_links_t;

/** @brief Forget the kept links; gather from now on or not. */
void dedup_links_reset(dedup_links_t *l, int gather);
/** @brief Write the kept links in one statement and forget them. @returns 0 or -1 (errstr). */
int dedup_links_write(pg_t *pg, dedup_links_t *l, char *errstr, size_t errstr_size);
/** @brief Free the kept links' memory. */
void dedup_links_free(dedup_links_t *l);

/** @brief SimHash of title + body (either may be NULL). Allocates nothing. */
uint64_t dedup_simhash(const char *title, const char *body);

/** @brief Hamming distance of two fingerprints. */
int dedup_distance(uint64_t a, uint64_t b);

/**
 * @brief Inside the caller's transaction: store the case's fingerprint,
 *        find its master among open cases, record the duplicate link (kept
 *        in links when it gathers; links may be NULL: written now), and
 *        insert the hotspot row when this case completes one.
 * @returns 0 or -1 with errstr (pg->sqlstate set; not set: out of memory).
 */
int dedup_check(pg_t *pg, const dedup_opts_t *o, dedup_links_t *links, const char *case_id,
                const char *district, const char *domain, uint64_t simhash, dedup_result_t *out,
                char *errstr, size_t errstr_size);

#endif
