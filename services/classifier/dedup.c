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
    "ORDER BY received_at DESC LIMIT 500) f "
    "WHERE bit_count((f.simhash # $3::bigint)::bit(64)) <= $5::int "
    /* the status by its key too, whatever the plan cached while cases was small */
    "AND (SELECT c.status FROM cases c WHERE c.id = f.case_id) "
    "NOT IN ('closed', 'merged', 'rejected', 'withdrawn') "
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

/* a gathering batch's fingerprints ($1..$4) and duplicate links ($5..$7) at its end */
static const pg_stmt_t dd_write_many = {
    "dd_write_many",
    "WITH fp AS (INSERT INTO case_fingerprints (case_id, district_code, domain, simhash) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) "
    "ON CONFLICT (case_id) DO NOTHING) "
    "INSERT INTO case_duplicates (case_id, master_id, distance) "
    "SELECT * FROM unnest($5::uuid[], $6::uuid[], $7::int[]) ON CONFLICT (case_id) DO NOTHING",
    7};

/* dd_candidates for a batch's cases at once ($1 ids, $2 districts, $3 fingerprints; $4
 * window, $5 most bits): each case's scan as dd_candidates makes it, in one statement; the
 * rows of a case (ord: its place in the arrays, from 1) nearest first, as dd_candidates
 * orders them. (Reading each district's fingerprints once and joining the batch's cases
 * to them was twice as slow: a batch's cases are mostly of different districts, and the
 * rows went through a materialized CTE and a hash join.) The batch's own cases are not in
 * the table yet: dedup_batch_search compares them in C */
static const pg_stmt_t dd_candidates_many = {
    "dd_candidates_many",
    "SELECT i.ord, f.case_id, COALESCE((SELECT d.master_id FROM case_duplicates d "
    "WHERE d.case_id = f.case_id), f.case_id) AS master, f.dist, "
    "(extract(epoch FROM now() - f.received_at) * 1000)::bigint AS age_ms "
    "FROM unnest($1::uuid[], $2::text[], $3::bigint[]) WITH ORDINALITY "
    "AS i(case_id, district, simhash, ord) CROSS JOIN LATERAL "
    "(SELECT f.case_id, f.received_at, bit_count((f.simhash # i.simhash)::bit(64)) AS dist "
    "FROM (SELECT case_id, simhash, received_at FROM case_fingerprints "
    "WHERE district_code = i.district AND case_id <> i.case_id "
    "AND received_at > now() - $4::bigint * interval '1 millisecond' "
    "ORDER BY received_at DESC LIMIT 500) f "
    "WHERE bit_count((f.simhash # i.simhash)::bit(64)) <= $5::int "
    /* the candidate's status by its key, not joined: a plan made while cases was small
     * hashed all of it for every batch (2.8 ms a search in the benchmark) */
    "AND (SELECT c.status FROM cases c WHERE c.id = f.case_id) "
    "NOT IN ('closed', 'merged', 'rejected', 'withdrawn')) f "
    "ORDER BY i.ord, f.dist, f.received_at, f.case_id",
    5};

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

int dedup_batch_reset(dedup_batch_t *b, int gather)
{
    b->n = 0;
    b->nj = 0;
    b->next = 0;
    b->gather = gather;
    return pg_rows_ready(&b->fp, 7);
}

void dedup_batch_free(dedup_batch_t *b)
{
    free(b->v);
    free(b->j);
    pg_rows_free(&b->fp);
    memset(b, 0, sizeof(*b));
}

int dedup_batch_write(pg_t *pg, dedup_batch_t *b, char *errstr, size_t errstr_size)
{
    if (b->n == 0 && b->fp.n == 0)
        return 0;
    if (!b->fp.col) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        char d[12];
        snprintf(d, sizeof(d), "%d", b->v[i].distance);
        pg_rows_text(&b->fp, 4, b->v[i].case_id);
        pg_rows_text(&b->fp, 5, b->v[i].master);
        pg_rows_text(&b->fp, 6, d);
    }
    PGresult *res =
        pg_rows_exec(pg, &dd_write_many, &b->fp, NULL, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return -1;
    PQclear(res);
    b->n = 0;
    return 0;
}

/* a candidate's master: a link the batch keeps for it, else the statement's */
static const char *dd_master(const dedup_batch_t *b, const PGresult *res, int i)
{
    const char *id = pg_get(res, i, "case_id");
    for (size_t k = 0; b && k < b->n; k++)
        if (strcmp(b->v[k].case_id, id) == 0)
            return b->v[k].master;
    return pg_get(res, i, "master");
}

/* keep this case's link for the batch's end. -1: out of memory */
static int dd_keep(dedup_batch_t *b, const char *case_id, const char *master, int distance)
{
    dedup_link_t *v = util_grow(b->v, &b->cap, b->n + 1, sizeof(*v), 16);
    if (!v)
        return -1;
    b->v = v;
    snprintf(v[b->n].case_id, sizeof(v[b->n].case_id), "%s", case_id);
    snprintf(v[b->n].master, sizeof(v[b->n].master), "%s", master);
    v[b->n++].distance = distance;
    return 0;
}

/* keep this case's fingerprint for the batch's end */
static void dd_keep_fingerprint(dedup_batch_t *b, const char *case_id, const char *district,
                                const char *domain, const char *simhash)
{
    pg_rows_text(&b->fp, 0, case_id);
    pg_rows_text(&b->fp, 1, district);
    pg_rows_text(&b->fp, 2, domain);
    pg_rows_text(&b->fp, 3, simhash);
    b->fp.n++;
}

/* a case near enough to compare with: a row of the search (tier 0, in the
 * statement's order) or an earlier case of the batch (tier 1: received now,
 * after every row of the table; by id) */
typedef struct dd_cand {
    int dist, tier;
    int64_t age_ms;
    size_t row;
    const char *case_id, *master;
} dd_cand_t;

static int dd_cand_cmp(const void *pa, const void *pb)
{
    const dd_cand_t *a = pa, *b = pb;
    if (a->dist != b->dist)
        return a->dist < b->dist ? -1 : 1;
    if (a->tier != b->tier)
        return a->tier < b->tier ? -1 : 1;
    if (a->tier == 0)
        return a->row < b->row ? -1 : a->row > b->row;
    return strcmp(a->case_id, b->case_id);
}

/* the judgement over the candidates, nearest first: the nearest within
 * dup_distance and the duplicate window is the master, those within
 * similar_distance and the hotspot window count for a hotspot (the oldest of
 * them its master if there is no duplicate) */
static void dd_judge(const dedup_opts_t *o, const dd_cand_t *c, size_t n, dedup_result_t *out,
                     char *oldest, size_t oldest_size)
{
    int64_t oldest_age = -1;
    memset(out, 0, sizeof(*out));
    out->distance = n ? c[0].dist : 65;
    out->similar = 1; /* this case */
    oldest[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!out->duplicate_of[0] && c[i].dist <= o->dup_distance &&
            c[i].age_ms <= o->dup_window_ms)
            snprintf(out->duplicate_of, sizeof(out->duplicate_of), "%s", c[i].master);
        if (c[i].dist <= o->similar_distance && c[i].age_ms <= o->hotspot_window_ms) {
            out->similar++;
            if (c[i].age_ms > oldest_age) {
                oldest_age = c[i].age_ms;
                snprintf(oldest, oldest_size, "%s", c[i].master);
            }
        }
    }
}

/* the most bits a candidate may differ by: the larger of the two distances */
static int dd_max_distance(const dedup_opts_t *o)
{
    return o->similar_distance > o->dup_distance ? o->similar_distance : o->dup_distance;
}

/* the search's settings as parameters: the longer window, the larger distance */
static void dd_params(const dedup_opts_t *o, char *win, size_t win_size, char *maxd,
                      size_t maxd_size)
{
    int64_t window =
        o->dup_window_ms > o->hotspot_window_ms ? o->dup_window_ms : o->hotspot_window_ms;
    snprintf(win, win_size, "%" PRId64, window);
    snprintf(maxd, maxd_size, "%d", dd_max_distance(o));
}

/* row r of a search's result as a candidate (tier 0), with its master */
static dd_cand_t dd_row(const PGresult *res, int r, const char *master)
{
    return (dd_cand_t){atoi(pg_get(res, r, "dist")), 0,
                       strtoll(pg_get(res, r, "age_ms"), NULL, 10), (size_t)r,
                       pg_get(res, r, "case_id"), master};
}

/* each searched case judged over its rows of res (ord: its place, from 1; the rows
 * in ord order) and the batch's cases before it in its district; c has room for
 * all rows and all cases */
static void dd_batch_judge(const dedup_opts_t *o, dedup_batch_t *b, const PGresult *res,
                           const char *const *district, dd_cand_t *c)
{
    int r = 0, maxd = dd_max_distance(o);
    for (size_t k = 0; k < b->nj; k++) {
        size_t m = 0;
        for (; r < PQntuples(res) && strtoull(PQgetvalue(res, r, 0), NULL, 10) == k + 1; r++)
            c[m++] = dd_row(res, r, pg_get(res, r, "master"));
        for (size_t j = 0; j < k; j++) {
            int d = dedup_distance(b->j[k].simhash, b->j[j].simhash);
            if (d <= maxd && strcmp(district[j], district[k]) == 0)
                c[m++] = (dd_cand_t){d, 1, 0, j, b->j[j].case_id,
                                     b->j[j].r.duplicate_of[0] ? b->j[j].r.duplicate_of
                                                               : b->j[j].case_id};
        }
        qsort(c, m, sizeof(*c), dd_cand_cmp);
        dd_judge(o, c, m, &b->j[k].r, b->j[k].oldest_similar, sizeof(b->j[k].oldest_similar));
    }
}

int dedup_batch_search(pg_t *pg, const dedup_opts_t *o, dedup_batch_t *b, const dedup_query_t *q,
                       size_t n, char *errstr, size_t errstr_size)
{
    strbuf_t ids, dists, hashes;
    const char **district = calloc(n ? n : 1, sizeof(*district));
    dd_cand_t *c = NULL;
    PGresult *res = NULL;
    int rc = -1;
    b->nj = 0;
    b->next = 0;
    pg_array_begin(&ids);
    pg_array_begin(&dists);
    pg_array_begin(&hashes);
    if (!district)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        if (!q[i].district || !q[i].district[0])
            continue;
        for (size_t k = 0; k < b->nj && !seen; k++)
            seen = strcmp(b->j[k].case_id, q[i].case_id) == 0;
        if (seen) /* a second event of the case: its handler reads its own */
            continue;
        dedup_judged_t *j = util_grow(b->j, &b->capj, b->nj + 1, sizeof(*j), 16);
        if (!j)
            goto oom;
        b->j = j;
        j = &b->j[b->nj];
        memset(j, 0, sizeof(*j));
        snprintf(j->case_id, sizeof(j->case_id), "%s", q[i].case_id);
        j->simhash = dedup_simhash(q[i].title, q[i].body);
        district[b->nj++] = q[i].district;
        char hs[24];
        snprintf(hs, sizeof(hs), "%" PRId64, (int64_t)j->simhash);
        pg_array_add(&ids, q[i].case_id);
        pg_array_add(&dists, q[i].district);
        pg_array_add(&hashes, hs);
    }
    if (b->nj == 0) {
        rc = 0;
        goto out;
    }
    pg_array_end(&ids);
    pg_array_end(&dists);
    pg_array_end(&hashes);
    char win[24], maxd[8];
    dd_params(o, win, sizeof(win), maxd, sizeof(maxd));
    const char *v[5] = {ids.s, dists.s, hashes.s, win, maxd};
    res = pg_exec_stmt(pg, &dd_candidates_many, v, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res) {
        b->nj = 0;
        goto out;
    }
    c = malloc(((size_t)PQntuples(res) + b->nj) * sizeof(*c));
    if (!c)
        goto oom;
    dd_batch_judge(o, b, res, district, c);
    rc = 0;
    goto out;
oom:
    b->nj = 0;
    snprintf(errstr, errstr_size, "out of memory");
out:
    PQclear(res);
    free(c);
    free(district);
    strbuf_free(&ids);
    strbuf_free(&dists);
    strbuf_free(&hashes);
    return rc;
}

/* the case's search from the batch's claim, or NULL: the handlers run in
 * the claim's order, so it is mostly the next one */
static dedup_judged_t *dd_take(dedup_batch_t *b, const char *case_id)
{
    for (size_t k = 0; k < b->nj; k++) {
        dedup_judged_t *j = &b->j[(b->next + k) % b->nj];
        if (!j->taken && strcmp(j->case_id, case_id) == 0) {
            j->taken = 1;
            b->next = (size_t)(j - b->j) + 1;
            return j;
        }
    }
    return NULL;
}

int dedup_check(pg_t *pg, const dedup_opts_t *o, dedup_batch_t *b, const char *case_id,
                const char *district, const char *domain, const char *title, const char *body,
                dedup_result_t *out, char *errstr, size_t errstr_size)
{
    char hs[24], win[24], maxd[8], cnt[12], oldest[37];
    PGresult *res = NULL;
    int rc = -1;
    int gather = b && b->gather && b->fp.col;
    dedup_judged_t *jd = gather ? dd_take(b, case_id) : NULL;
    memset(out, 0, sizeof(*out));
    out->distance = 65;
    district = district ? district : "";
    snprintf(hs, sizeof(hs), "%" PRId64,
             (int64_t)(jd ? jd->simhash : dedup_simhash(title, body)));

    if (!district[0] || jd) {
        /* the search at the claim, or none: without a district there is no "same
         * place", no duplicate or hotspot judgement (and no scan of every case
         * without one). The fingerprint is kept for the batch's end or written now */
        if (gather) {
            dd_keep_fingerprint(b, case_id, district, domain, hs);
        } else {
            const char *fv[4] = {case_id, district, domain, hs};
            res = pg_exec_stmt(pg, &dd_fingerprint, fv, PGRES_COMMAND_OK, errstr, errstr_size);
            if (!res)
                goto out;
        }
        if (!jd) {
            rc = 0;
            goto out;
        }
        *out = jd->r;
        snprintf(oldest, sizeof(oldest), "%s", jd->oldest_similar);
    } else {
        /* searched now, the fingerprint written by the same statement */
        dd_params(o, win, sizeof(win), maxd, sizeof(maxd));
        const char *cv[6] = {case_id, district, hs, win, maxd, domain};
        res = pg_exec_stmt(pg, &dd_candidates, cv, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!res)
            goto out;
        dd_cand_t *c = malloc(((size_t)PQntuples(res) + 1) * sizeof(*c));
        if (!c) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        for (int i = 0; i < PQntuples(res); i++)
            c[i] = dd_row(res, i, dd_master(b, res, i));
        dd_judge(o, c, (size_t)PQntuples(res), out, oldest, sizeof(oldest));
        free(c);
    }
    if (out->duplicate_of[0] && gather) {
        if (dd_keep(b, case_id, out->duplicate_of, out->distance) != 0) {
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
    if (o->hotspot_k > 0 && out->similar >= o->hotspot_k && oldest[0]) {
        /* the master of a hotspot: the duplicate master if there is one, else the oldest similar
         * case */
        snprintf(out->hotspot_master, sizeof(out->hotspot_master), "%s",
                 out->duplicate_of[0] ? out->duplicate_of : oldest);
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
