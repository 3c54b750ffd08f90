/*
 * casestore: lock, check, bump, history, outbox — in the caller's transaction.
 */
#include "casestore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casefsm.h"
#include "outbox.h"
#include "util.h"

static const pg_stmt_t cs_lock = {
    "cs_lock",
    "SELECT status, version, case_no, trace_id FROM cases WHERE id = $1::uuid FOR UPDATE", 1};

static const pg_stmt_t cs_bump = {
    "cs_bump",
    "UPDATE cases SET status = COALESCE($2, status), version = version + $3::int, "
    "event_seq = event_seq + 1, updated_at = now() WHERE id = $1::uuid "
    "RETURNING version, event_seq, status",
    3};

static const pg_stmt_t cs_history = {
    "cs_history",
    "INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, producer, "
    "actor, occurred_at, summary) VALUES ($1::uuid, $2::bigint, $3::uuid, $4, $5::bigint, $6, "
    "$7, $8, to_timestamp($9::double precision / 1000), $10::jsonb)",
    10};

static int cs_run(pg_t *pg, const casestore_change_t *ch, int change, proto_env_t *pe,
                  casestore_result_t *out, char *errstr, size_t errstr_size)
{
    PGresult *res = NULL;
    casestore_result_t local;
    int rc = CASESTORE_ERROR;
    char *summary = NULL;
    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));

    const char *lv[1] = {ch->case_id};
    res = pg_exec_stmt(pg, &cs_lock, lv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        return CASESTORE_ERROR;
    if (PQntuples(res) == 0) {
        snprintf(errstr, errstr_size, "case %s not found", ch->case_id);
        rc = CASESTORE_NOT_FOUND;
        goto out;
    }
    const char *status = pg_get(res, 0, "status");
    int64_t version = strtoll(pg_get(res, 0, "version"), NULL, 10);
    snprintf(out->status_before, sizeof(out->status_before), "%s", status);
    proto_env_set_case(pe, ch->case_id, pg_get(res, 0, "case_no"), pg_get(res, 0, "trace_id"));

    if (change && ch->from) {
        int ok = 0;
        for (const char *const *f = ch->from; *f; f++)
            ok |= strcmp(*f, status) == 0;
        if (!ok) {
            snprintf(errstr, errstr_size, "case %s is %s; %s needs it to be %s%s",
                     pe->case_no, status, pe->event_type, ch->from[0],
                     ch->from[1] ? " (or another allowed status)" : "");
            rc = CASESTORE_CONFLICT;
            goto out;
        }
    }
    if (change && ch->to && !casefsm_allowed_names(status, ch->to)) {
        snprintf(errstr, errstr_size, "case %s: transition %s -> %s is not allowed", pe->case_no,
                 status, ch->to);
        rc = CASESTORE_CONFLICT;
        goto out;
    }
    if (change && ch->expect_version > 0 && ch->expect_version != version) {
        snprintf(errstr, errstr_size,
                 "case %s is at version %" PRId64 ", not %" PRId64 "; reload it and try again",
                 pe->case_no, version, ch->expect_version);
        rc = CASESTORE_STALE;
        goto out;
    }
    PQclear(res);
    res = NULL;

    const char *bv[3] = {ch->case_id, change ? ch->to : NULL,
                         (change && (ch->to || ch->bump_version)) ? "1" : "0"};
    res = pg_exec_stmt(pg, &cs_bump, bv, PGRES_TUPLES_OK, errstr, errstr_size);
    if (!res)
        goto out;
    out->version = strtoll(pg_get(res, 0, "version"), NULL, 10);
    out->seq = strtoll(pg_get(res, 0, "event_seq"), NULL, 10);
    snprintf(out->status_after, sizeof(out->status_after), "%s", pg_get(res, 0, "status"));
    PQclear(res);
    res = NULL;

    pe->env.case_version = out->version;
    pe->env.case_seq = out->seq;

    {
        const ProtobufCMessage *payload = proto_env_payload(&pe->env);
        json_t *js = payload ? proto_to_json(payload) : json_object();
        summary = json_dumps(js, JSON_COMPACT);
        json_decref(js);
    }
    char seq[24], ver[24], at[32];
    snprintf(seq, sizeof(seq), "%" PRId64, out->seq);
    snprintf(ver, sizeof(ver), "%" PRId64, out->version);
    snprintf(at, sizeof(at), "%" PRId64, pe->env.occurred_at_ms);
    const char *hv[10] = {ch->case_id, seq,         pe->event_id, pe->event_type,
                          ver,         out->status_after, ch->producer, ch->actor,
                          at,          summary ? summary : "{}"};
    res = pg_exec_stmt(pg, &cs_history, hv, PGRES_COMMAND_OK, errstr, errstr_size);
    if (!res)
        goto out;
    PQclear(res);
    res = NULL;

    if (ch->topic &&
        outbox_append_env(pg, ch->producer, ch->topic, &pe->env, errstr, errstr_size) != 0)
        goto out;
    rc = CASESTORE_OK;
out:
    free(summary);
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
