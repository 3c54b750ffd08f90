/*
 * casestore: lock, check, bump, history, outbox — in the caller's transaction.
 *
 * Two round trips per event on the fast path: one UPDATE that locks the row,
 * checks the expected status/version and bumps it (returning the old status),
 * and one statement that writes the history row and the outbox row together.
 * When the UPDATE matches nothing, a locking SELECT finds out why (not
 * found, wrong status, stale version) for the error message.
 */
#include "casestore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "casefsm.h"
#include "outbox.h"
#include "util.h"

static const pg_stmt_t cs_lock = {
    "cs_lock",
    "SELECT status, version, case_no, trace_id FROM cases WHERE id = $1::uuid FOR NO KEY UPDATE",
    1};

/* $4: allowed current statuses (NULL = any), $5: expected version (0 = any) */
static const pg_stmt_t cs_bump = {"cs_bump", CASESTORE_BUMP_SQL(""), 5};

static const pg_stmt_t cs_write = {
    "cs_write",
    "WITH h AS (INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, "
    "producer, actor, occurred_at, summary) VALUES ($1::uuid, $2::bigint, $3::uuid, $4, "
    "$5::bigint, $6, $7, $8, to_timestamp($9::double precision / 1000), $10::jsonb)) "
    "INSERT INTO outbox (producer, topic, msg_key, payload, headers) "
    "SELECT $7, $11::text, $1, $12::bytea, $13::jsonb WHERE $11::text IS NOT NULL",
    13};

/* "{a,b}" from a NULL-terminated list; NULL for NULL */
static char *cs_array(const char *const *from)
{
    strbuf_t b;
    if (!from)
        return NULL;
    strbuf_init(&b);
    strbuf_append(&b, "{", 1);
    for (const char *const *f = from; *f; f++) {
        if (f != from)
            strbuf_append(&b, ",", 1);
        strbuf_append(&b, *f, strlen(*f));
    }
    strbuf_append(&b, "}", 1);
    return b.s;
}

/* why did the bump match nothing? fills errstr, @returns the casestore code */
static int cs_explain(pg_t *pg, const casestore_change_t *ch, proto_env_t *pe,
                      casestore_result_t *out, char *errstr, size_t errstr_size)
{
    const char *lv[1] = {ch->case_id};
    PGresult *res = pg_exec_stmt(pg, &cs_lock, lv, PGRES_TUPLES_OK, errstr, errstr_size);
    int rc = CASESTORE_ERROR;
    if (!res)
        return CASESTORE_ERROR;
    if (PQntuples(res) == 0) {
        snprintf(errstr, errstr_size, "case %s not found", ch->case_id);
        rc = CASESTORE_NOT_FOUND;
        goto out;
    }
    const char *status = pg_get(res, 0, "status");
    const char *case_no = pg_get(res, 0, "case_no");
    int64_t version = strtoll(pg_get(res, 0, "version"), NULL, 10);
    /* callers explain refusals with the status and version the case really has */
    snprintf(out->status_before, sizeof(out->status_before), "%s", status);
    snprintf(out->status_after, sizeof(out->status_after), "%s", status);
    out->version = version;
    proto_env_set_case(pe, ch->case_id, case_no, pg_get(res, 0, "trace_id"));
    int ok = !ch->from;
    for (const char *const *f = ch->from; f && *f; f++)
        ok |= strcmp(*f, status) == 0;
    if (!ok) {
        snprintf(errstr, errstr_size, "case %s is %s; %s needs it to be %s%s", case_no, status,
                 pe->event_type, ch->from[0], ch->from[1] ? " (or another allowed status)" : "");
        rc = CASESTORE_CONFLICT;
    } else if (ch->to && !casefsm_allowed_names(status, ch->to)) {
        snprintf(errstr, errstr_size, "case %s: transition %s -> %s is not allowed", case_no,
                 status, ch->to);
        rc = CASESTORE_CONFLICT;
    } else if (ch->expect_version > 0 && ch->expect_version != version) {
        snprintf(errstr, errstr_size,
                 "case %s is at version %" PRId64 ", not %" PRId64 "; reload it and try again",
                 case_no, version, ch->expect_version);
        rc = CASESTORE_STALE;
    } else {
        snprintf(errstr, errstr_size, "case %s changed concurrently; retry", case_no);
        rc = CASESTORE_STALE;
    }
out:
    PQclear(res);
    return rc;
}

/* what an event writes: its payload as JSON (the history summary), its
 * headers, and - with a topic - the packed envelope for the outbox row */
static void cs_encode(proto_env_t *pe, const char *topic, char **summary, char **hdrs,
                      uint8_t **packed, size_t *plen)
{
    const ProtobufCMessage *payload = proto_env_payload(&pe->env);
    json_t *js = payload ? proto_to_json(payload) : json_object();
    *summary = json_dumps(js, JSON_COMPACT);
    json_decref(js);
    json_t *h = proto_env_headers(&pe->env);
    *hdrs = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    *plen = 0;
    *packed = topic ? proto_env_pack(&pe->env, plen) : NULL;
}

/* the history + outbox rows of many events: one array per column of cs_write_many */
typedef struct cs_rows {
    pg_rows_t rows; /**< the 13 columns of cs_write_many */
    size_t nout;    /**< of them with a topic: outbox rows */
} cs_rows_t;

static const pg_stmt_t cs_write_many;

/* -1: out of memory */
static int cs_rows_init(cs_rows_t *r)
{
    memset(r, 0, sizeof(*r));
    return pg_rows_init(&r->rows, 13);
}

static void cs_rows_free(cs_rows_t *r)
{
    pg_rows_free(&r->rows);
    r->nout = 0;
}

/* one event (pe carries its case number, version and seq already); the
 * packed envelope goes to the outbox when topic is set. -1: out of memory */
static int cs_rows_add(cs_rows_t *r, const char *case_id, const char *status, const char *producer,
                       const char *actor, const char *topic, proto_env_t *pe)
{
    char seq[24], ver[24], at[32], *summary, *hdrs;
    uint8_t *packed;
    size_t plen = 0;
    pg_rows_t *w = &r->rows;
    cs_encode(pe, topic, &summary, &hdrs, &packed, &plen);
    snprintf(seq, sizeof(seq), "%" PRId64, pe->env.case_seq);
    snprintf(ver, sizeof(ver), "%" PRId64, pe->env.case_version);
    snprintf(at, sizeof(at), "%" PRId64, pe->env.occurred_at_ms);
    const char *text[11] = {case_id,  seq,   pe->event_id, pe->event_type, ver,  status,
                            producer, actor, at,           summary ? summary : "{}", topic};
    for (int c = 0; c < 11; c++)
        pg_rows_text(w, c, text[c]);
    pg_rows_bytea(w, 11, packed, plen);
    pg_rows_text(w, 12, hdrs ? hdrs : "{}");
    int bad = topic && !packed;
    free(summary);
    free(hdrs);
    free(packed);
    w->n++;
    r->nout += topic != NULL;
    return bad ? -1 : 0;
}

/* write them in one statement (outbox rows in the order added); r is
 * emptied (pg_rows_exec), cs_rows_free it */
static int cs_rows_write(pg_t *pg, cs_rows_t *r, char *errstr, size_t errstr_size)
{
    if (r->rows.n == 0)
        return CASESTORE_OK;
    PGresult *res =
        pg_rows_exec(pg, &cs_write_many, &r->rows, NULL, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        return CASESTORE_ERROR;
    PQclear(res);
    outbox_wrote(pg, (int)r->nout);
    return CASESTORE_OK;
}

/* a case this transaction holds locked, as it stands with the changes kept
 * for it so far (casestore_defer_know): its next change is decided here */
typedef struct cs_known {
    char id[40];
    char status[24];
    char case_no[64];
    char trace_id[64];
    int64_t version;
    int64_t seq;
    int pending; /**< a change of it waits in cs_defer_t.bumps */
} cs_known_t;

/* what a batch gathers (pg->defer): its history and outbox rows, the cases
 * it knows, and their status changes, for one statement each */
typedef struct cs_defer {
    cs_rows_t rows;            /**< history + outbox rows */
    cs_known_t *known;         /**< the cases known, in the order made known */
    size_t nknown, cap;
    const pg_stmt_t *bump;     /**< the statement of the kept changes (bump_many) */
    pg_rows_t bumps;           /**< its columns: id, status, version, seq, the caller's */
    size_t npending;           /**< rows in bumps */
} cs_defer_t;

static void cs_defer_free(cs_defer_t *d)
{
    if (!d)
        return;
    cs_rows_free(&d->rows);
    pg_rows_free(&d->bumps);
    free(d->known);
    free(d);
}

void casestore_defer_begin(pg_t *pg)
{
    casestore_defer_discard(pg);
    cs_defer_t *d = calloc(1, sizeof(*d));
    if (!d || cs_rows_init(&d->rows) != 0) {
        cs_defer_free(d);
        return; /* no gathering: every append is written at once */
    }
    pg->defer = d;
}

static cs_known_t *cs_known_find(cs_defer_t *d, const char *case_id)
{
    for (size_t i = 0; d && i < d->nknown; i++)
        if (strcasecmp(d->known[i].id, case_id) == 0)
            return &d->known[i];
    return NULL;
}

int casestore_defer_know(pg_t *pg, const PGresult *res, int row)
{
    cs_defer_t *d = pg->defer;
    static const char *const cols[6] = {"id", "status", "version", "event_seq", "case_no",
                                        "trace_id"};
    if (!d)
        return -1;
    for (int c = 0; c < 6; c++)
        if (PQfnumber(res, cols[c]) < 0 || PQgetisnull(res, row, PQfnumber(res, cols[c])))
            return -1;
    const char *id = pg_get(res, row, "id");
    cs_known_t *k = cs_known_find(d, id);
    if (k)
        return k->pending ? -1 : 0; /* known already: what it knows is newer */
    cs_known_t *nk = util_grow(d->known, &d->cap, d->nknown + 1, sizeof(*nk), 64);
    if (!nk)
        return -1;
    d->known = nk;
    k = &d->known[d->nknown];
    memset(k, 0, sizeof(*k));
    const char *v[4] = {id, pg_get(res, row, "status"), pg_get(res, row, "case_no"),
                        pg_get(res, row, "trace_id")};
    char *dst[4] = {k->id, k->status, k->case_no, k->trace_id};
    size_t sz[4] = {sizeof(k->id), sizeof(k->status), sizeof(k->case_no), sizeof(k->trace_id)};
    for (int i = 0; i < 4; i++)
        if ((size_t)snprintf(dst[i], sz[i], "%s", v[i]) >= sz[i])
            return -1; /* longer than kept: this case's changes go at once */
    k->version = strtoll(pg_get(res, row, "version"), NULL, 10);
    k->seq = strtoll(pg_get(res, row, "event_seq"), NULL, 10);
    d->nknown++;
    return 0;
}

/* write the kept status changes; the cases stay known (the rows now hold
 * what they knew) */
static int cs_bumps_write(pg_t *pg, cs_defer_t *d, char *errstr, size_t errstr_size)
{
    if (!d || d->npending == 0)
        return CASESTORE_OK;
    size_t n = d->npending;
    d->npending = 0;
    for (size_t i = 0; i < d->nknown; i++)
        d->known[i].pending = 0;
    PGresult *res =
        pg_rows_exec(pg, d->bump, &d->bumps, NULL, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return CASESTORE_ERROR;
    int got = PQntuples(res);
    PQclear(res);
    if ((size_t)got != n) {
        /* cannot happen while the rows stay locked; the careful re-run finds out */
        snprintf(errstr, errstr_size, "%s changed %d of %zu cases", d->bump->name, got, n);
        return CASESTORE_CONFLICT;
    }
    return CASESTORE_OK;
}

int casestore_defer_sync(pg_t *pg, const char *case_id, char *errstr, size_t errstr_size)
{
    cs_defer_t *d = pg->defer;
    if (!d || d->npending == 0)
        return CASESTORE_OK;
    if (case_id) {
        cs_known_t *k = cs_known_find(d, case_id);
        if (!k || !k->pending)
            return CASESTORE_OK;
    }
    return cs_bumps_write(pg, d, errstr, errstr_size);
}

int casestore_defer_flush(pg_t *pg, char *errstr, size_t errstr_size)
{
    cs_defer_t *d = pg->defer;
    if (!d)
        return CASESTORE_OK;
    pg->defer = NULL;
    int rc = cs_bumps_write(pg, d, errstr, errstr_size);
    if (rc == CASESTORE_OK)
        rc = cs_rows_write(pg, &d->rows, errstr, errstr_size);
    cs_defer_free(d);
    return rc;
}

void casestore_defer_discard(pg_t *pg)
{
    cs_defer_t *d = pg->defer;
    pg->defer = NULL;
    cs_defer_free(d);
}

/* the change kept for the batch's statement instead of run now: the case is
 * known, its status allowed, its version as expected. @returns 1 kept, 0
 * not (run it now), -1 out of memory */
static int cs_keep(pg_t *pg, cs_known_t *k, const casestore_change_t *ch,
                   const char *const *allowed, proto_env_t *pe, casestore_result_t *out)
{
    cs_defer_t *d = pg->defer;
    const pg_stmt_t *st = ch->bump_many;
    int ok = !allowed;
    for (const char *const *f = allowed; f && *f; f++)
        ok |= strcmp(*f, k->status) == 0;
    if (!ok || (ch->expect_version > 0 && ch->expect_version != k->version))
        return 0; /* refused: the statement now says why, as without a batch */
    if (st->nparams < 4 || st->nparams > PG_ROWS_MAX_COLS)
        return 0;
    if (d->npending && d->bump != st)
        return 0; /* the caller syncs first (cs_run) */
    if (d->npending == 0) {
        if (d->bumps.ncols != st->nparams)
            pg_rows_free(&d->bumps);
        if (pg_rows_ready(&d->bumps, st->nparams) != 0)
            return -1;
    }
    d->bump = st;
    snprintf(out->status_before, sizeof(out->status_before), "%s", k->status);
    if (ch->to)
        snprintf(k->status, sizeof(k->status), "%s", ch->to);
    snprintf(out->status_after, sizeof(out->status_after), "%s", k->status);
    k->version += (ch->to || ch->bump_version) ? 1 : 0;
    k->seq += 1;
    out->version = k->version;
    out->seq = k->seq;
    char ver[24], seq[24];
    snprintf(ver, sizeof(ver), "%" PRId64, k->version);
    snprintf(seq, sizeof(seq), "%" PRId64, k->seq);
    pg_rows_text(&d->bumps, 0, k->id);
    pg_rows_text(&d->bumps, 1, k->status);
    pg_rows_text(&d->bumps, 2, ver);
    pg_rows_text(&d->bumps, 3, seq);
    for (int c = 4; c < st->nparams; c++)
        pg_rows_text(&d->bumps, c, ch->bump_values[c - 4]);
    d->bumps.n++;
    d->npending++;
    k->pending = 1;
    proto_env_set_case(pe, ch->case_id, k->case_no, k->trace_id);
    return 1;
}

static int cs_run(pg_t *pg, const casestore_change_t *ch, int change, proto_env_t *pe,
                  casestore_result_t *out, char *errstr, size_t errstr_size)
{
    PGresult *res = NULL;
    casestore_result_t local;
    int rc = CASESTORE_ERROR;
    char *summary = NULL, *from = NULL, *hdrs = NULL;
    uint8_t *packed = NULL;
    const char *const *allowed = change ? ch->from : NULL;
    const char *to = change ? ch->to : NULL;
    char expect[24];
    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));

    /* a case known to the batch: a change kept for it is written before
     * anything else reads or changes its row (one row per case a statement) */
    cs_defer_t *d = pg->defer;
    cs_known_t *k = cs_known_find(d, ch->case_id);
    int keep = change && k && ch->bump_many;
    if ((k && k->pending) || (keep && d->npending && d->bump != ch->bump_many)) {
        rc = cs_bumps_write(pg, d, errstr, errstr_size);
        if (rc != CASESTORE_OK)
            return rc;
        rc = CASESTORE_ERROR;
    }

    /* a status change without a from-list: learn the status first, so that a
     * refused transition is our clear error and not the trigger's exception */
    const char *single[2] = {NULL, NULL};
    if (to && !allowed && k) {
        snprintf(out->status_before, sizeof(out->status_before), "%s", k->status);
        single[0] = out->status_before;
        allowed = single;
    } else if (to && !allowed) {
        const char *lv[1] = {ch->case_id};
        res = pg_exec_stmt(pg, &cs_lock, lv, PGRES_TUPLES_OK, errstr, errstr_size);
        if (!res)
            return CASESTORE_ERROR;
        if (PQntuples(res) == 0) {
            PQclear(res);
            snprintf(errstr, errstr_size, "case %s not found", ch->case_id);
            return CASESTORE_NOT_FOUND;
        }
        snprintf(out->status_before, sizeof(out->status_before), "%s", pg_get(res, 0, "status"));
        PQclear(res);
        res = NULL;
        single[0] = out->status_before;
        allowed = single;
    }
    /* keep only the statuses from which the transition is allowed; the UPDATE
     * then matches exactly the cases that may move */
    const char *filtered[CASE__COUNT + 1];
    if (to) {
        size_t nf = 0;
        for (const char *const *f = allowed; *f && nf < CASE__COUNT; f++)
            if (casefsm_allowed_names(*f, to))
                filtered[nf++] = *f;
        filtered[nf] = NULL;
        if (!nf)
            return cs_explain(pg, ch, pe, out, errstr, errstr_size);
        allowed = filtered;
    }

    if (keep) { /* the batch's one statement makes the change (casestore_defer_flush) */
        int kept = cs_keep(pg, k, ch, allowed, pe, out);
        if (kept < 0) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        if (kept)
            goto gathered;
    }
    from = cs_array(allowed);
    snprintf(expect, sizeof(expect), "%" PRId64, change ? ch->expect_version : 0);
    const char *bv[5 + CASESTORE_BUMP_MAX_EXTRA] = {
        ch->case_id, to, (change && (to || ch->bump_version)) ? "1" : "0", from, expect};
    const pg_stmt_t *bump = &cs_bump;
    if (change && ch->bump) {
        if (ch->bump->nparams < 5 || ch->bump->nparams > 5 + CASESTORE_BUMP_MAX_EXTRA) {
            snprintf(errstr, errstr_size, "%s: %d parameters, casestore takes 5 to %d",
                     ch->bump->name, ch->bump->nparams, 5 + CASESTORE_BUMP_MAX_EXTRA);
            goto out;
        }
        for (int k = 5; k < ch->bump->nparams; k++)
            bv[k] = ch->bump_values[k - 5];
        bump = ch->bump;
    }
    res = pg_exec_stmt(pg, bump, bv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        goto out;
    if (PQntuples(res) == 0) {
        PQclear(res);
        res = NULL;
        rc = cs_explain(pg, ch, pe, out, errstr, errstr_size);
        goto out;
    }
    snprintf(out->status_before, sizeof(out->status_before), "%s", pg_get(res, 0, "old_status"));
    out->version = strtoll(pg_get(res, 0, "version"), NULL, 10);
    out->seq = strtoll(pg_get(res, 0, "event_seq"), NULL, 10);
    snprintf(out->status_after, sizeof(out->status_after), "%s", pg_get(res, 0, "status"));
    proto_env_set_case(pe, ch->case_id, pg_get(res, 0, "case_no"), pg_get(res, 0, "trace_id"));
    PQclear(res);
    res = NULL;
    if (k) { /* what the row holds now */
        snprintf(k->status, sizeof(k->status), "%s", out->status_after);
        k->version = out->version;
        k->seq = out->seq;
    }

gathered:
    pe->env.case_version = out->version;
    pe->env.case_seq = out->seq;
    if (d) { /* the batch writes the rows at its end (casestore_defer_flush) */
        if (cs_rows_add(&d->rows, ch->case_id, out->status_after, ch->producer, ch->actor,
                        ch->topic, pe) != 0) {
            snprintf(errstr, errstr_size, "out of memory packing %s", pe->event_type);
            goto out;
        }
        rc = CASESTORE_OK;
        goto out;
    }
    size_t plen = 0;
    cs_encode(pe, ch->topic, &summary, &hdrs, &packed, &plen);
    char seq[24], ver[24], at[32];
    snprintf(seq, sizeof(seq), "%" PRId64, out->seq);
    snprintf(ver, sizeof(ver), "%" PRId64, out->version);
    snprintf(at, sizeof(at), "%" PRId64, pe->env.occurred_at_ms);
    const char *wv[13] = {ch->case_id,  seq,        pe->event_id,
                          pe->event_type, ver,      out->status_after,
                          ch->producer, ch->actor,  at,
                          summary ? summary : "{}", ch->topic, (const char *)packed,
                          hdrs ? hdrs : "{}"};
    int wl[13] = {0};
    int wf[13] = {0};
    wl[11] = (int)plen;
    wf[11] = 1;
    if (!packed)
        wv[11] = NULL;
    res = pg_exec_stmt_bin(pg, &cs_write, wv, wl, wf, 0, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        goto out;
    outbox_wrote(pg, ch->topic != NULL);
    rc = CASESTORE_OK;
out:
    free(summary);
    free(hdrs);
    free(packed);
    free(from);
    PQclear(res);
    return rc;
}

int casestore_apply(pg_t *pg, const casestore_change_t *ch, proto_env_t *pe,
                    casestore_result_t *out, char *errstr, size_t errstr_size)
{
    return cs_run(pg, ch, 1, pe, out, errstr, errstr_size);
}

int casestore_append(pg_t *pg, const char *case_id, const char *producer, const char *actor,
                     const char *topic, proto_env_t *pe, casestore_result_t *out, char *errstr,
                     size_t errstr_size)
{
    casestore_change_t ch = {.case_id = case_id, .producer = producer, .actor = actor,
                             .topic = topic};
    return cs_run(pg, &ch, 0, pe, out, errstr, errstr_size);
}

/* every case of the batch locked in id order (so two batches cannot deadlock
 * on each other), bumped by its number of events; base = its seq before */
static const pg_stmt_t cs_bump_many = {
    "cs_bump_many",
    "WITH req AS (SELECT id, count(*)::int AS n FROM unnest($1::uuid[]) AS r(id) GROUP BY id), "
    "locked AS (SELECT c.id FROM cases c JOIN req ON req.id = c.id ORDER BY c.id "
    "FOR NO KEY UPDATE OF c) "
    "UPDATE cases c SET event_seq = c.event_seq + req.n, updated_at = now() "
    "FROM req, locked WHERE c.id = req.id AND locked.id = c.id "
    "RETURNING c.id::text AS id, c.event_seq - req.n AS base, c.version, c.status, c.case_no, "
    "c.trace_id",
    1};

static const pg_stmt_t cs_write_many = {
    "cs_write_many",
    "WITH e AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], "
    "$5::bigint[], $6::text[], $7::text[], $8::text[], $9::double precision[], $10::jsonb[], "
    "$11::text[], $12::bytea[], $13::jsonb[]) WITH ORDINALITY AS e(case_id, seq, event_id, "
    "event_type, version, status, producer, actor, at_ms, summary, topic, payload, headers, ord)), "
    "h AS (INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, "
    "producer, actor, occurred_at, summary) SELECT case_id, seq, event_id, event_type, version, "
    "status, producer, actor, to_timestamp(at_ms / 1000), summary FROM e) "
    "INSERT INTO outbox (producer, topic, msg_key, payload, headers) "
    "SELECT producer, topic, case_id::text, payload, headers FROM e WHERE topic IS NOT NULL "
    "ORDER BY ord",
    13};

/* write events whose out (status, version, seq) and envelope case are
 * decided: their history and outbox rows in one statement */
static int cs_write_events(pg_t *pg, casestore_event_t *ev, size_t n, char *errstr,
                           size_t errstr_size)
{
    cs_rows_t rows;
    int rc = CASESTORE_ERROR;
    if (cs_rows_init(&rows) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        return CASESTORE_ERROR;
    }
    for (size_t i = 0; i < n; i++) {
        proto_env_t *pe = ev[i].pe;
        pe->env.case_version = ev[i].out.version;
        pe->env.case_seq = ev[i].out.seq;
        if (cs_rows_add(&rows, ev[i].case_id, ev[i].out.status_after, ev[i].producer,
                        ev[i].actor, ev[i].topic, pe) != 0) {
            snprintf(errstr, errstr_size, "out of memory packing %s", pe->event_type);
            goto out;
        }
    }
    rc = cs_rows_write(pg, &rows, errstr, errstr_size);
out:
    cs_rows_free(&rows);
    return rc;
}

int casestore_append_first(pg_t *pg, casestore_event_t *ev, size_t n, char *errstr,
                           size_t errstr_size)
{
    if (n == 0)
        return CASESTORE_OK;
    if (pg->defer && casestore_defer_flush(pg, errstr, errstr_size) != CASESTORE_OK)
        return CASESTORE_ERROR;
    for (size_t i = 0; i < n; i++) {
        casestore_result_t *o = &ev[i].out;
        memset(o, 0, sizeof(*o));
        snprintf(o->status_before, sizeof(o->status_before), "%s", CASESTORE_FIRST_STATUS);
        snprintf(o->status_after, sizeof(o->status_after), "%s", CASESTORE_FIRST_STATUS);
        o->version = CASESTORE_FIRST_VERSION;
        o->seq = CASESTORE_FIRST_SEQ;
    }
    return cs_write_events(pg, ev, n, errstr, errstr_size);
}

/* the bump's row for a case id, or -1 */
static int cs_row_of(PGresult *res, const char *case_id)
{
    for (int i = 0, n = PQntuples(res); i < n; i++)
        if (strcasecmp(PQgetvalue(res, i, 0), case_id) == 0)
            return i;
    return -1;
}

int casestore_append_many(pg_t *pg, casestore_event_t *ev, size_t n, char *errstr,
                          size_t errstr_size)
{
    strbuf_t ids;
    PGresult *res = NULL;
    int rc = CASESTORE_ERROR, *rows = NULL;
    int64_t *next = NULL;
    if (n == 0)
        return CASESTORE_OK;
    /* appends gathered earlier in the batch go first: outbox rows stay in order */
    if (pg->defer && casestore_defer_flush(pg, errstr, errstr_size) != CASESTORE_OK)
        return CASESTORE_ERROR;
    pg_array_begin(&ids);
    for (size_t i = 0; i < n; i++)
        pg_array_add(&ids, ev[i].case_id);
    pg_array_end(&ids);
    const char *bv[1] = {ids.s};
    res = pg_exec_stmt(pg, &cs_bump_many, bv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        goto out;
    rows = calloc(n, sizeof(*rows));
    next = malloc((size_t)(PQntuples(res) + 1) * sizeof(*next));
    if (!rows || !next) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++)
        next[r] = -1;
    /* each event's seq: its case's base plus its place among that case's events */
    for (size_t i = 0; i < n; i++) {
        int r = cs_row_of(res, ev[i].case_id);
        if (r < 0) {
            snprintf(errstr, errstr_size, "case %s not found", ev[i].case_id);
            rc = CASESTORE_NOT_FOUND;
            goto out;
        }
        rows[i] = r;
        if (next[r] < 0)
            next[r] = strtoll(pg_get(res, r, "base"), NULL, 10);
        casestore_result_t *o = &ev[i].out;
        const char *status = pg_get(res, r, "status");
        memset(o, 0, sizeof(*o));
        snprintf(o->status_before, sizeof(o->status_before), "%s", status);
        snprintf(o->status_after, sizeof(o->status_after), "%s", status);
        o->version = strtoll(pg_get(res, r, "version"), NULL, 10);
        o->seq = ++next[r];
    }
    for (size_t i = 0; i < n; i++)
        proto_env_set_case(ev[i].pe, ev[i].case_id, pg_get(res, rows[i], "case_no"),
                           pg_get(res, rows[i], "trace_id"));
    rc = cs_write_events(pg, ev, n, errstr, errstr_size);
out:
    strbuf_free(&ids);
    free(rows);
    free(next);
    PQclear(res);
    return rc;
}
