/*
 * dedup: SimHash fingerprints and the duplicate / hotspot queries (see
 * dedup.h). The Hamming distance is computed by PostgreSQL (bit_count of
 * the XOR) so that only the cases within similar_distance come back.
 */
#include "dedup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textfeat.h"
#include "util.h"

/* this case's fingerprint ($1, $2, $6 domain, $3 simhash), and the open cases
 * of the district within the window, nearest first, in one round trip (the
 * search does not see the row the statement inserts, and leaves this case out
 * anyway); a case that is itself a duplicate stands for its master */
static const pg_stmt_t dd_candidates = {
    "dd_candidates",
    "WITH fp AS (INSERT INTO case_fingerprints (case_id, district_code, domain, simhash) "
    "VALUES ($1::uuid, $2, $6, $3::bigint) ON CONFLICT (case_id) DO NOTHING) "
    /* the master of a candidate looked up by its key for the few rows near enough, not
     * joined: a hash join read all of case_duplicates for every case classified */
    "SELECT f.case_id, COALESCE((SELECT d.master_id FROM case_duplicates d "
    "WHERE d.case_id = f.case_id), f.case_id) AS master, "
    "bit_count((f.simhash # $3::bigint)::bit(64)) AS dist, "
    "(extract(epoch FROM now() - f.received_at) * 1000)::bigint AS age_ms "
    /* the newest DEDUP_SCAN fingerprints of the district only: the cost per case
     * stays bounded however many cases the window holds (index on
     * (district_code, received_at)) */
    /* and only the columns the index holds: an index-only scan (migration 0024) */
    "FROM (SELECT case_id, simhash, received_at FROM case_fingerprints "
    "WHERE district_code = $2 AND case_id <> $1::uuid "
    "AND received_at > now() - $4::bigint * interval '1 millisecond' "
    "ORDER BY received_at DESC LIMIT 500) f JOIN cases c ON c.id = f.case_id "
    "WHERE true "
    "AND c.status NOT IN ('closed', 'merged', 'rejected', 'withdrawn') "
    "AND bit_count((f.simhash # $3::bigint)::bit(64)) <= $5::int "
    "ORDER BY dist, f.received_at, f.case_id LIMIT 1000",
    6};

/* the fingerprint alone: a case without a district is compared with nothing */
static const pg_stmt_t dd_fingerprint = {
    "dd_fingerprint",
    "INSERT INTO case_fingerprints (case_id, district_code, domain, simhash) "
    "VALUES ($1::uuid, $2, $3, $4::bigint) ON CONFLICT (case_id) DO NOTHING",
    4};

static const pg_stmt_t dd_link = {
    "dd_link",
    "INSERT INTO case_duplicates (case_id, master_id, distance) VALUES ($1::uuid, $2::uuid, "
    "$3::int) ON CONFLICT (case_id) DO NOTHING",
    3};

static const pg_stmt_t dd_link_many = {
    "dd_link_many",
    "INSERT INTO case_duplicates (case_id, master_id, distance) "
    "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[]) ON CONFLICT (case_id) DO NOTHING",
    3};

/* the window is aligned to multiples of its length since the epoch, so every
 * instance computes the same window_start for the same moment */
static const pg_stmt_t dd_hotspot = {
    "dd_hotspot",
    "INSERT INTO hotspots (district_code, domain, window_start, window_ms, master_id, "
    "case_count) VALUES ($1, $2, to_timestamp(floor(extract(epoch FROM now()) * 1000 / "
    "$3::bigint) * $3::bigint / 1000.0), $3::bigint, $4::uuid, $5::int) "
    "ON CONFLICT (district_code, domain, window_start) DO NOTHING "
    "RETURNING (extract(epoch FROM window_start) * 1000)::bigint AS start_ms",
    5};

/* the bits of each byte value, one per lane: a shingle hash's 64 bits are
 * counted as eight rows of eight, which the compiler adds as vectors (3.5
 * times faster than a loop over the 64 bits: decision 0045) */
#define DD_B8(v)                                                                                 \
    {(v)&1, (v) >> 1 & 1, (v) >> 2 & 1, (v) >> 3 & 1, (v) >> 4 & 1, (v) >> 5 & 1, (v) >> 6 & 1,  \
     (v) >> 7 & 1}
#define DD_B32(v)                                                                                \
    DD_B8(v), DD_B8(v + 1), DD_B8(v + 2), DD_B8(v + 3), DD_B8(v + 4), DD_B8(v + 5),               \
        DD_B8(v + 6), DD_B8(v + 7), DD_B8(v + 8), DD_B8(v + 9), DD_B8(v + 10), DD_B8(v + 11),     \
        DD_B8(v + 12), DD_B8(v + 13), DD_B8(v + 14), DD_B8(v + 15), DD_B8(v + 16),               \
        DD_B8(v + 17), DD_B8(v + 18), DD_B8(v + 19), DD_B8(v + 20), DD_B8(v + 21),               \
        DD_B8(v + 22), DD_B8(v + 23), DD_B8(v + 24), DD_B8(v + 25), DD_B8(v + 26),               \
        DD_B8(v + 27), DD_B8(v + 28), DD_B8(v + 29), DD_B8(v + 30), DD_B8(v + 31)
static const uint8_t dd_bits[256][8] = {DD_B32(0),   DD_B32(32),  DD_B32(64),  DD_B32(96),
                                        DD_B32(128), DD_B32(160), DD_B32(192), DD_B32(224)};

/* per bit position, how many of the hashes so far have it set: 16-bit
 * counters, folded into 32-bit ones before they could overflow */
typedef struct dd_votes {
    uint32_t ones[64];
    uint16_t part[64];
    uint32_t n, npart;
} dd_votes_t;

static void dd_vote(dd_votes_t *v, uint64_t h)
{
    for (int k = 0; k < 8; k++) {
        const uint8_t *t = dd_bits[(h >> (8 * k)) & 0xff];
        for (int j = 0; j < 8; j++)
            v->part[8 * k + j] += t[j];
    }
    if (++v->npart == UINT16_MAX) {
        for (int b = 0; b < 64; b++) {
            v->ones[b] += v->part[b];
            v->part[b] = 0;
        }
        v->n += v->npart;
        v->npart = 0;
    }
}

uint64_t dedup_simhash(const char *title, const char *body)
{
    dd_votes_t v;
    memset(&v, 0, sizeof(v));
    const char *fields[2] = {title, body};
    for (int f = 0; f < 2; f++) {
        const unsigned char *s = (const unsigned char *)fields[f];
        uint32_t c1 = 0, c2 = 0;
        size_t len, i = 0, adv;
        if (!s)
            continue;
        len = strlen((const char *)s);
        while (i < len) {
            uint32_t cp = textfeat_next_cp(s + i, len - i, &adv);
            i += adv;
            int keep = textfeat_is_han(cp) || (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9');
            if (!keep) {
                c1 = c2 = 0;
                continue;
            }
            /* bigrams and trigrams: an inserted character changes few of them */
            if (c1)
                dd_vote(&v, textfeat_mix64((uint64_t)cp | (uint64_t)c1 << 21 | 1ull << 63));
            if (c1 && c2)
                dd_vote(&v, textfeat_mix64((uint64_t)cp | (uint64_t)c1 << 21 | (uint64_t)c2 << 42));
            c2 = c1;
            c1 = cp;
        }
    }
    /* a bit is set where more hashes have it than not (a tie: not) */
    uint64_t out = 0;
    for (int b = 0; b < 64; b++)
        if (2 * (uint64_t)(v.ones[b] + v.part[b]) > (uint64_t)v.n + v.npart)
            out |= 1ull << b;
    return out;
}

int dedup_distance(uint64_t a, uint64_t b)
{
    return __builtin_popcountll(a ^ b);
}

void dedup_links_reset(dedup_links_t *l, int gather)
{
    l->n = 0;
    l->gather = gather;
}

void dedup_links_free(dedup_links_t *l)
{
    free(l->v);
    memset(l, 0, sizeof(*l));
}

int dedup_links_write(pg_t *pg, dedup_links_t *l, char *errstr, size_t errstr_size)
{
    pg_rows_t rows;
    int rc = -1;
    if (l->n == 0)
        return 0;
    memset(&rows, 0, sizeof(rows));
    if (pg_rows_init(&rows, 3) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < l->n; i++) {
        char d[12];
        snprintf(d, sizeof(d), "%d", l->v[i].distance);
        pg_rows_text(&rows, 0, l->v[i].case_id);
        pg_rows_text(&rows, 1, l->v[i].master);
        pg_rows_text(&rows, 2, d);
        rows.n++;
    }
    PGresult *res =
        pg_rows_exec(pg, &dd_link_many, &rows, NULL, PGRES_COMMAND_OK, errstr, errstr_size);
    if (res) {
        PQclear(res);
        l->n = 0;
        rc = 0;
    }
    pg_rows_free(&rows);
    return rc;
}

/* a candidate's master: a link the batch keeps for it, else the statement's */
static const char *dd_master(const dedup_links_t *l, const PGresult *res, int i)
{
    const char *id = pg_get(res, i, "case_id");
    for (size_t k = 0; l && k < l->n; k++)
        if (strcmp(l->v[k].case_id, id) == 0)
            return l->v[k].master;
    return pg_get(res, i, "master");
}

/* keep this case's link for the batch's end. -1: out of memory */
static int dd_keep(dedup_links_t *l, const char *case_id, const char *master, int distance)
{
    dedup_link_t *v = util_grow(l->v, &l->cap, l->n + 1, sizeof(*v), 16);
    if (!v)
        return -1;
    l->v = v;
    snprintf(v[l->n].case_id, sizeof(v[l->n].case_id), "%s", case_id);
    snprintf(v[l->n].master, sizeof(v[l->n].master), "%s", master);
    v[l->n++].distance = distance;
    return 0;
}

int dedup_check(pg_t *pg, const dedup_opts_t *o, dedup_links_t *links, const char *case_id,
                const char *district, const char *domain, uint64_t simhash, dedup_result_t *out,
                char *errstr, size_t errstr_size)
{
    char hs[24], win[24], maxd[8], cnt[12];
    PGresult *res = NULL;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    out->distance = 65;
    district = district ? district : "";
    snprintf(hs, sizeof(hs), "%" PRId64, (int64_t)simhash);
    int64_t window =
        o->dup_window_ms > o->hotspot_window_ms ? o->dup_window_ms : o->hotspot_window_ms;
    snprintf(win, sizeof(win), "%" PRId64, window);
    snprintf(maxd, sizeof(maxd), "%d",
             o->similar_distance > o->dup_distance ? o->similar_distance : o->dup_distance);

    if (!district[0]) {
        /* without a district there is no "same place": no duplicate or hotspot
         * judgement (and no scan of every case without one) */
        const char *fv[4] = {case_id, district, domain, hs};
        res = pg_exec_stmt(pg, &dd_fingerprint, fv, PGRES_COMMAND_OK, errstr, errstr_size);
        rc = res ? 0 : -1;
        goto out;
    }
    const char *cv[6] = {case_id, district, hs, win, maxd, domain};
    res = pg_exec_stmt(pg, &dd_candidates, cv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        goto out;
    const char *oldest_similar = NULL;
    int64_t oldest_age = -1;
    out->similar = 1; /* this case */
    for (int i = 0; i < PQntuples(res); i++) {
        int dist = atoi(pg_get(res, i, "dist"));
        int64_t age = strtoll(pg_get(res, i, "age_ms"), NULL, 10);
        if (i == 0)
            out->distance = dist;
        if (!out->duplicate_of[0] && dist <= o->dup_distance && age <= o->dup_window_ms)
            snprintf(out->duplicate_of, sizeof(out->duplicate_of), "%s",
                     dd_master(links, res, i));
        if (dist <= o->similar_distance && age <= o->hotspot_window_ms) {
            out->similar++;
            if (age > oldest_age) {
                oldest_age = age;
                oldest_similar = dd_master(links, res, i);
            }
        }
    }
    if (out->duplicate_of[0] && links && links->gather) {
        if (dd_keep(links, case_id, out->duplicate_of, out->distance) != 0) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
    } else if (out->duplicate_of[0]) {
        char d[8];
        snprintf(d, sizeof(d), "%d", out->distance);
        const char *lv[3] = {case_id, out->duplicate_of, d};
        PGresult *r2 = pg_exec_stmt(pg, &dd_link, lv, PGRES_COMMAND_OK, errstr, errstr_size);
        if (!r2)
            goto out;
        PQclear(r2);
    }
    if (o->hotspot_k > 0 && district[0] && out->similar >= o->hotspot_k && oldest_similar) {
        /* the master of a hotspot: the duplicate master if there is one, else the oldest similar
         * case */
        snprintf(out->hotspot_master, sizeof(out->hotspot_master), "%s",
                 out->duplicate_of[0] ? out->duplicate_of : oldest_similar);
        snprintf(win, sizeof(win), "%" PRId64, o->hotspot_window_ms);
        snprintf(cnt, sizeof(cnt), "%d", out->similar);
        const char *hv[5] = {district, domain, win, out->hotspot_master, cnt};
        PGresult *r2 = pg_exec_stmt(pg, &dd_hotspot, hv, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!r2)
            goto out;
        if (PQntuples(r2) == 1) {
            out->hotspot = 1;
            out->window_start_ms = strtoll(pg_get(r2, 0, "start_ms"), NULL, 10);
        }
        PQclear(r2);
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}
