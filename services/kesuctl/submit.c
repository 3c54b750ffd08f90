/*
 * kesuctl submit: one complaint (--title, --body, ...) through
 * POST /v1/complaints, or a whole NDJSON file (--file) through the batch
 * API, POST /v1/complaints/batch, in chunks of --chunk lines with a
 * progress bar on stderr. It goes through intake like every other channel,
 * so the same checks, idempotency and masking apply; nothing here writes to
 * the database.
 *
 * A file's line numbers are kept across chunks: every refused line is
 * reported with its number in the file. With --idempotency_key K chunk n is
 * sent with the key "K.n", so sending the same file again (after a failure
 * half-way, say) replays what was taken instead of making new cases.
 * Blank lines are skipped.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpc.h"
#include "kesuctl.h"
#include "util.h"

/* The batch API takes at most this many lines per request. */
#define SUBMIT_CHUNK_MAX 10000

/* Width of the progress bar in cells. */
#define PROGRESS_CELLS 30

void kesuctl_progress(FILE *out, const char *label, long done, long total, int64_t t0_ms,
                      int final)
{
    int tty = isatty(fileno(out));
    double secs = (double)(util_mono_ms() - t0_ms) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    if (!tty) {
        /* a log, not a terminal: one line per step, no carriage returns */
        fprintf(out, "%s: %ld/%ld (%.0f/s)\n", label, done, total, rate);
        return;
    }
    int fill = total > 0 ? (int)(done * PROGRESS_CELLS / total) : PROGRESS_CELLS;
    char bar[PROGRESS_CELLS + 1];
    for (int i = 0; i < PROGRESS_CELLS; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[PROGRESS_CELLS] = '\0';
    fprintf(out, "\r%s [%s] %ld/%ld %3ld%%  %.0f/s ", label, bar, done, total,
            total > 0 ? done * 100 / total : 100, rate);
    if (final)
        fputc('\n', out);
    fflush(out);
}

/* the submission of --title/--body/...: the body of POST /v1/complaints */
static json_t *submit_one_body(const kesuctl_t *k)
{
    json_t *c = json_pack("{s:s, s:s, s:s}", "channel", k->channel && *k->channel ? k->channel
                                                                                   : "web",
                          "title", k->title, "body", k->body);
    if (k->language && *k->language)
        json_object_set_new(c, "language", json_string(k->language));
    if (k->external_ref && *k->external_ref)
        json_object_set_new(c, "external_ref", json_string(k->external_ref));
    if ((k->district && *k->district) || (k->address && *k->address)) {
        json_t *loc = json_object();
        if (k->district && *k->district)
            json_object_set_new(loc, "district_code", json_string(k->district));
        if (k->address && *k->address)
            json_object_set_new(loc, "address", json_string(k->address));
        json_object_set_new(c, "location", loc);
    }
    return c;
}

static int submit_one(kesuctl_t *k)
{
    char errstr[512];
    httpc_response_t r = {0};
    json_error_t je;
    json_t *res = NULL;
    int ret = 1;
    if (!k->title || !*k->title || !k->body || !*k->body) {
        fprintf(stderr, "kesuctl submit: give --title and --body (or --file x.ndjson)\n");
        return 2;
    }
    json_t *c = submit_one_body(k);
    char *body = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    if (!body)
        goto out;
    if (kesuctl_api(k, "POST", "/v1/complaints", "application/json", k->idem_key, body,
                    strlen(body), &r, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl submit: %s\n", errstr);
        goto out;
    }
    if (r.status != 201 && r.status != 200) {
        ret = kesuctl_api_error("submit", &r);
        goto out;
    }
    if (k->json) {
        printf("%s\n", r.body);
        ret = 0;
        goto out;
    }
    if (!(res = json_loads(r.body, 0, &je))) {
        fprintf(stderr, "kesuctl submit: the API's answer is not JSON: %s\n", je.text);
        goto out;
    }
    const char *no = json_string_value(json_object_get(res, "case_no"));
    const char *code = json_string_value(json_object_get(res, "access_code"));
    printf("%s\n", no ? no : "");
    fprintf(stderr, "%s %s (status %s); the complainant's access code is %s\n",
            r.status == 201 ? "created" : json_is_true(json_object_get(res, "duplicate"))
                                              ? "already known as"
                                              : "replayed",
            no ? no : "?", kesuctl_str(json_object_get(res, "status"), "?"),
            code ? code : "(not shown again)");
    ret = 0;
out:
    free(body);
    json_decref(res);
    httpc_response_free(&r);
    return ret;
}

/* what became of the lines of a file */
typedef struct submit_tally {
    long created;  /**< 201 */
    long known;    /**< 200: duplicate external_ref or replayed key */
    long refused;  /**< 4xx/5xx lines */
    long sent;     /**< lines sent so far */
} submit_tally_t;

/* send one chunk; lineno[i] is the file line of chunk line i+1 */
static int submit_chunk(kesuctl_t *k, const strbuf_t *chunk, const long *lineno, long n,
                        long chunk_no, submit_tally_t *t)
{
    char errstr[512], idem[300];
    httpc_response_t r = {0};
    int ret = -1;
    if (k->idem_key && *k->idem_key)
        snprintf(idem, sizeof(idem), "%s.%ld", k->idem_key, chunk_no);
    if (kesuctl_api(k, "POST", "/v1/complaints/batch", "application/x-ndjson",
                    k->idem_key && *k->idem_key ? idem : NULL, chunk->s, chunk->len, &r, errstr,
                    sizeof(errstr)) != 0) {
        fprintf(stderr, "\nkesuctl submit: %s\n", errstr);
        goto out;
    }
    if (r.status != 200) {
        fputc('\n', stderr);
        kesuctl_api_error("submit", &r);
        goto out;
    }
    /* one result line per input line, in order */
    for (char *save = NULL, *l = strtok_r(r.body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *o = json_loads(l, 0, &je);
        long line = (long)json_integer_value(json_object_get(o, "line"));
        long st = (long)json_integer_value(json_object_get(o, "status"));
        long at = line >= 1 && line <= n ? lineno[line - 1] : -1;
        if (st == 201) {
            t->created++;
        } else if (st == 200) {
            t->known++;
        } else {
            json_t *e = json_object_get(o, "error");
            const char *field = json_string_value(json_object_get(e, "field"));
            t->refused++;
            fprintf(stderr, "%sline %ld: %ld %s%s%s%s: %s\n", isatty(2) ? "\r" : "", at, st,
                    kesuctl_str(json_object_get(e, "code"), "error"), field ? " (" : "",
                    field ? field : "", field ? ")" : "",
                    kesuctl_str(json_object_get(e, "message"), ""));
        }
        json_decref(o);
    }
    t->sent += n;
    ret = 0;
out:
    httpc_response_free(&r);
    return ret;
}

static int submit_file(kesuctl_t *k)
{
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long total = 0, fileline = 0, n = 0, chunk_no = 0, *lineno = NULL;
    long chunk = k->chunk > 0 ? k->chunk : 500;
    submit_tally_t t = {0};
    strbuf_t b;
    int ret = 1;
    strbuf_init(&b);
    if (chunk > SUBMIT_CHUNK_MAX) {
        fprintf(stderr, "kesuctl submit: --chunk is at most %d lines\n", SUBMIT_CHUNK_MAX);
        ret = 2;
        goto out;
    }
    if (!(f = strcmp(k->file, "-") == 0 ? stdin : fopen(k->file, "r"))) {
        fprintf(stderr, "kesuctl submit: cannot open %s\n", k->file);
        goto out;
    }
    /* count the lines first, for the progress bar (not possible on stdin) */
    if (f != stdin) {
        while ((len = getline(&line, &cap, f)) >= 0)
            total += strspn(line, " \t\r\n") < (size_t)len;
        rewind(f);
    }
    if (!(lineno = malloc(sizeof(*lineno) * (size_t)chunk)))
        goto out;
    int64_t t0 = util_mono_ms();
    for (;;) {
        len = getline(&line, &cap, f);
        if (len >= 0) {
            fileline++;
            if (strspn(line, " \t\r\n") == (size_t)len)
                continue; /* blank */
            strbuf_append(&b, line, (size_t)len);
            if (line[len - 1] != '\n')
                strbuf_append(&b, "\n", 1);
            lineno[n++] = fileline;
        }
        if (n > 0 && (n == chunk || len < 0)) {
            if (submit_chunk(k, &b, lineno, n, ++chunk_no, &t) != 0)
                goto out;
            kesuctl_progress(stderr, "submit", t.sent, f == stdin ? t.sent : total, t0, len < 0);
            b.len = 0;
            b.s[0] = '\0';
            n = 0;
        }
        if (len < 0)
            break;
    }
    if (t.sent == 0) {
        fprintf(stderr, "kesuctl submit: %s has no complaints (one JSON object per line)\n",
                k->file);
        goto out;
    }
    printf("%ld lines: %ld created, %ld already known, %ld refused\n", t.sent, t.created, t.known,
           t.refused);
    ret = t.refused ? 1 : 0;
out:
    if (ret != 0 && t.sent > 0 && t.sent < total)
        fprintf(stderr,
                "kesuctl submit: stopped after %ld of %ld lines; send the file again with the "
                "same --idempotency_key to go on without duplicates\n",
                t.sent, total);
    if (f && f != stdin)
        fclose(f);
    free(line);
    free(lineno);
    strbuf_free(&b);
    return ret;
}

int kesuctl_submit(kesuctl_t *k)
{
    if (k->file && *k->file)
        return submit_file(k);
    return submit_one(k);
}
