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

/** @brief SimHash of title + body (either may be NULL). Allocates nothing. */
uint64_t dedup_simhash(const char *title, const char *body);

/** @brief Hamming distance of two fingerprints. */
int dedup_distance(uint64_t a, uint64_t b);

/**
 * @brief Inside the caller's transaction: store the case's fingerprint,
 *        find its master among open cases, record the duplicate link, and
 *        insert the hotspot row when this case completes one.
 * @returns 0 or -1 with errstr (pg->sqlstate set).
 */
int dedup_check(pg_t *pg, const dedup_opts_t *o, const char *case_id, const char *district,
                const char *domain, uint64_t simhash, dedup_result_t *out, char *errstr,
                size_t errstr_size);

#endif
