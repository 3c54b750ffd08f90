/*
 * classify_event: CaseReceived -> CaseClassified (+ duplicate link,
 * HotspotDetected on the master case).
 *
 * The case row is locked and its status checked first: the consumer loop
 * releases (does not roll back) the savepoint of a skipped message, so a
 * case that was withdrawn meanwhile gets nothing written. The classification
 * columns are then written by casestore_apply()'s status change itself
 * (CASESTORE_BUMP_SQL): one new row version, not two.
 */
#include "classify_event.h"

#include <stdio.h>
#include <string.h>

#include "casestore.h"
#include "log.h"
#include "util.h"

/* the case row, locked for the change below: only a received case is classified */
static const pg_stmt_t ce_lock = {
    "ce_lock", "SELECT status FROM cases WHERE id = $1::uuid FOR NO KEY UPDATE", 1};

/* the same for a batch's cases at once, in id order (classify_batch) */
static const pg_stmt_t ce_lock_many = {
    "ce_lock_many",
    "SELECT id::text AS id, status, version, event_seq, case_no, trace_id FROM cases "
    "WHERE id = ANY ($1::uuid[]) ORDER BY id FOR NO KEY UPDATE",
    1};

/* the classification is written by the status change itself (one row version) */
static const pg_stmt_t ce_bump = {
    "ce_bump",
    CASESTORE_BUMP_SQL(", domain = $6, request_type = $7, category = $8, urgency = $9, "
                       "flags = $10::text[], confidence = $11::double precision, "
                       "needs_review = $12::boolean, classified_at = now()"),
    12};

/* the same for the batch's cases at once (decision 0038); ce_bump's values from $5 */
static const pg_stmt_t ce_bump_many = {
    "ce_bump_many",
    CASESTORE_BUMP_MANY_SQL(", $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], "
                            "$10::text[], $11::text[]",
                            ", v5, v6, v7, v8, v9, v10, v11",
                            ", domain = u.v5, request_type = u.v6, category = u.v7, "
                            "urgency = u.v8, flags = u.v9::text[], "
                            "confidence = u.v10::double precision, "
                            "needs_review = u.v11::boolean, classified_at = now()"),
    11};

void classify_ctx_init(classify_ctx_t *ctx, classify_t *cls, const dedup_opts_t *dedup)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cls = cls;
    ctx->dedup = *dedup;
    ctx->m_duplicates =
        metrics_counter("kesu_classifier_duplicates_total",
                        "Cases linked to an open master case (并单 candidates)", NULL);
    ctx->m_hotspots =
        metrics_counter("kesu_classifier_hotspots_total", "Hotspots raised (共性问题)", NULL);
    ctx->m_emergency = metrics_counter("kesu_classifier_emergencies_total",
                                       "Cases classified with urgency emergency", NULL);
    ctx->m_classified = metrics_counter("kesu_classifier_cases_total", "Cases classified", NULL);
    ctx->m_review = metrics_counter("kesu_classifier_needs_review_total",
                                    "Cases classified with low confidence (needs_review)", NULL);
    ctx->m_skipped = metrics_counter("kesu_classifier_skipped_total",
                                     "CaseReceived events for cases that had moved on", NULL);
}

void classify_ctx_swap(classify_ctx_t *ctx, classify_t *cls)
{
    classify_t *old = ctx->cls;
    ctx->cls = cls;
    classify_free(old);
}

void classify_ctx_free(classify_ctx_t *ctx)
{
    classify_free(ctx->cls);
    ctx->cls = NULL;
    pg_keyed_clear(&ctx->cases);
    dedup_batch_free(&ctx->dd);
}

static kc_result_t ce_db_failure(pg_t *pg);

/* the fast attempt's new cases, searched for duplicates in one statement: the
 * CaseReceived events whose case the claim found received (the others are
 * skipped by their handlers), in the handlers' order */
static kc_result_t ce_search(classify_ctx_t *ctx, pg_t *pg, const kc_msg_t *msgs, size_t n,
                             char *errstr, size_t errstr_size)
{
    dedup_query_t *q = calloc(n ? n : 1, sizeof(*q));
    size_t k = 0;
    if (!q) {
        snprintf(errstr, errstr_size, "out of memory");
        return KC_RETRY;
    }
    for (size_t i = 0; i < n; i++) {
        const Kesu__V1__Envelope *env = msgs[i].env;
        if (!classify_wants(ctx, env))
            continue;
        int row = pg_keyed_find(&ctx->cases, env->case_id);
        if (row < 0 || strcmp(pg_get(ctx->cases.res, row, "status"), "received") != 0)
            continue;
        const Kesu__V1__CaseReceived *cr = env->case_received;
        q[k++] = (dedup_query_t){env->case_id,
                                 cr->location ? cr->location->district_code : NULL, cr->title,
                                 cr->body};
    }
    int rc = dedup_batch_search(pg, &ctx->dedup, &ctx->dd, q, k, errstr, errstr_size);
    free(q);
    if (rc == 0)
        return KC_OK;
    return pg->sqlstate[0] ? ce_db_failure(pg) : KC_RETRY;
}

kc_result_t classify_batch(void *opaque, pg_t *pg, kc_batch_phase_t phase, const kc_msg_t *msgs,
                           size_t n, char *errstr, size_t errstr_size)
{
    classify_ctx_t *ctx = opaque;
    if (phase == KC_BATCH_END && dedup_batch_write(pg, &ctx->dd, errstr, errstr_size) != 0)
        return pg->sqlstate[0] ? ce_db_failure(pg) : KC_RETRY;
    /* a fast attempt searches its cases at the claim and keeps their fingerprints and
     * duplicate links for one statement at its end; a careful one searches and writes
     * each event's own, so that a savepoint undoes them */
    if ((phase == KC_BATCH_BEGIN || phase == KC_BATCH_BEGIN_CAREFUL || phase == KC_BATCH_END) &&
        dedup_batch_reset(&ctx->dd, phase == KC_BATCH_BEGIN) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        return KC_RETRY;
    }
    kc_result_t rc = kc_cases_step(pg, phase, &ce_lock_many, msgs, n, &ctx->cases, errstr,
                                   errstr_size);
    if (rc != KC_OK || phase != KC_BATCH_CLAIMED || !ctx->dd.gather)
        return rc;
    return ce_search(ctx, pg, msgs, n, errstr, errstr_size);
}

/* HotspotDetected in the master case's history (and on kesu.classifier.v1) */
static int ce_hotspot(pg_t *pg, const dedup_result_t *dr, const char *district, const char *domain,
                      const dedup_opts_t *o, char *errstr, size_t errstr_size)
{
    Kesu__V1__HotspotDetected hd = KESU__V1__HOTSPOT_DETECTED__INIT;
    proto_env_t pe;
    hd.district_code = (char *)district;
    hd.domain = (char *)domain;
    hd.count = dr->similar;
    hd.window_ms = o->hotspot_window_ms;
    proto_env_init(&pe, CLASSIFY_PRODUCER);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_HOTSPOT_DETECTED,
                          (const ProtobufCMessage *)&hd);
    return casestore_append(pg, dr->hotspot_master, CLASSIFY_PRODUCER, CLASSIFY_PRODUCER,
                            KAFKA_TOPIC_CLASSIFIER, &pe, NULL, errstr, errstr_size);
}

/* a database failure: retry when it may pass, else the event can never apply */
static kc_result_t ce_db_failure(pg_t *pg)
{
    return pg_failure_transient(pg) ? KC_RETRY : KC_POISON;
}

int classify_wants(void *opaque, const Kesu__V1__Envelope *env)
{
    (void)opaque;
    return env->payload_case == KESU__V1__ENVELOPE__PAYLOAD_CASE_RECEIVED;
}

kc_result_t classify_handle(void *opaque, pg_t *pg, const kc_msg_t *m, char *errstr,
                            size_t errstr_size)
{
    classify_ctx_t *ctx = opaque;
    const Kesu__V1__Envelope *env = m->env;
    const Kesu__V1__CaseReceived *cr;
    classify_result_t res;
    PGresult *pres = NULL;
    kc_result_t rc = KC_POISON;
    char flags[256], conf[32];
    size_t off = 0;

    if (!classify_wants(opaque, env))
        return KC_SKIP;
    cr = env->case_received;
    classify_text(ctx->cls, cr->title, cr->body, &res);

    /* flag codes were checked against a fixed list at load: safe in an array literal */
    flags[off++] = '{';
    for (size_t i = 0; i < res.nflags; i++)
        off +=
            (size_t)snprintf(flags + off, sizeof(flags) - off, "%s%s", i ? "," : "", res.flags[i]);
    snprintf(flags + off, sizeof(flags) - off, "}");
    snprintf(conf, sizeof(conf), "%.4f", res.confidence);
    const char *bv[7] = {res.domain, res.request_type, res.category, res.urgency, flags, conf,
                         res.needs_review ? "true" : "false"};
    /* locked and read with the batch's claim (classify_batch), or now */
    int row;
    const PGresult *cases =
        kc_case_row(pg, &ctx->cases, &ce_lock, env->case_id, &pres, &row, errstr, errstr_size);
    if (!cases)
        return ce_db_failure(pg);
    if (PQntuples(cases) == 0) {
        snprintf(errstr, errstr_size, "case %s not found", env->case_id);
        rc = KC_POISON;
        goto out;
    }
    if (strcmp(pg_get(cases, row, "status"), "received") != 0) {
        LOG_INFO("case is %s, no longer received: not classified", pg_get(cases, row, "status"));
        metrics_counter_add(ctx->m_skipped, 1);
        rc = KC_SKIP;
        goto out;
    }
    PQclear(pres);
    pres = NULL;

    /* duplicates and hotspots compare with the open cases of the same district */
    const char *district =
        cr->location && cr->location->district_code ? cr->location->district_code : "";
    dedup_result_t dr;
    if (dedup_check(pg, &ctx->dedup, &ctx->dd, env->case_id, district, res.domain, cr->title,
                    cr->body, &dr, errstr, errstr_size) != 0) {
        rc = ce_db_failure(pg);
        goto out;
    }

    Kesu__V1__CaseClassified cc = KESU__V1__CASE_CLASSIFIED__INIT;
    cc.duplicate_of = dr.duplicate_of;
    cc.domain = (char *)res.domain;
    cc.request_type = (char *)res.request_type;
    cc.category = (char *)res.category;
    cc.urgency = (char *)res.urgency;
    cc.flags = (char **)res.flags;
    cc.n_flags = res.nflags;
    cc.confidence = res.confidence;
    cc.needs_review = res.needs_review;
    cc.model = ctx->cls->name;

    proto_env_t pe;
    proto_env_init(&pe, CLASSIFY_PRODUCER);
    proto_env_set_payload(&pe, KESU__V1__ENVELOPE__PAYLOAD_CASE_CLASSIFIED,
                          (const ProtobufCMessage *)&cc);
    static const char *const from[] = {"received", NULL};
    casestore_change_t ch = {
        .case_id = env->case_id,
        .from = from,
        .to = "classified",
        .producer = CLASSIFY_PRODUCER,
        .actor = CLASSIFY_PRODUCER,
        .topic = KAFKA_TOPIC_CLASSIFIER,
        .bump = &ce_bump,
        .bump_values = bv,
        .bump_many = &ce_bump_many,
    };
    switch (casestore_apply(pg, &ch, &pe, NULL, errstr, errstr_size)) {
    case CASESTORE_OK:
        LOG_INFO(
            "classified domain=%s (%s) request_type=%s urgency=%s flags=%s confidence=%s%s%s%s",
            res.domain, res.domain_source, res.request_type, res.urgency, flags, conf,
            res.needs_review ? " needs_review" : "", dr.duplicate_of[0] ? " duplicate_of=" : "",
            dr.duplicate_of);
        metrics_counter_add(ctx->m_classified, 1);
        if (res.needs_review)
            metrics_counter_add(ctx->m_review, 1);
        if (dr.duplicate_of[0])
            metrics_counter_add(ctx->m_duplicates, 1);
        if (strcmp(res.urgency, "emergency") == 0)
            metrics_counter_add(ctx->m_emergency, 1);
        rc = KC_OK;
        if (dr.hotspot) {
            int hrc = ce_hotspot(pg, &dr, district, res.domain, &ctx->dedup, errstr, errstr_size);
            if (hrc == CASESTORE_OK) {
                LOG_INFO("hotspot: %d similar cases in district %s, master %s", dr.similar,
                         district, dr.hotspot_master);
                metrics_counter_add(ctx->m_hotspots, 1);
            } else if (hrc == CASESTORE_ERROR) {
                rc = ce_db_failure(pg);
            } else {
                /* the master vanished meanwhile: the hotspot row stays, the event is skipped */
                LOG_WARN("hotspot event not appended: %s", errstr);
            }
        }
        break;
    case CASESTORE_CONFLICT:
    case CASESTORE_STALE:
        LOG_INFO("not classified: %s", errstr);
        metrics_counter_add(ctx->m_skipped, 1);
        rc = KC_SKIP;
        break;
    case CASESTORE_NOT_FOUND:
        rc = KC_POISON;
        break;
    default:
        rc = ce_db_failure(pg);
        break;
    }
out:
    PQclear(pres);
    return rc;
}
