/*
 * kesuctl complainant erase: erase one complainant's contact data on their
 * request (by case number, or by phone number through the blind index),
 * with kesu_complainant_purge (migration 0009): the ciphertexts, blind index
 * and masked forms go, purged_at is set, and pii_erasures records who did it
 * and why. Cases, their history and archive records stay: they never held
 * contact data. The phone number given is never printed or logged.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "kesuctl.h"
#include "pg.h"
#include "util.h"

static const pg_stmt_t er_by_case = {
    "er_by_case",
    "SELECT c.case_no, kesu_complainant_purge(c.complainant_id, 'request', $2, $3) AS purged "
    "FROM cases c WHERE c.case_no = $1 AND c.complainant_id IS NOT NULL",
    3};

/* every complainant row with that phone (a repeat caller may have several) */
static const pg_stmt_t er_by_phone = {
    "er_by_phone",
    "SELECT (SELECT string_agg(case_no, ',' ORDER BY case_no) FROM cases "
    "        WHERE complainant_id = p.id) AS case_no, "
    "kesu_complainant_purge(p.id, 'request', $2, $3) AS purged "
    "FROM complainants p WHERE p.phone_index = decode($1, 'hex') ORDER BY p.created_at",
    3};

int kesuctl_complainant_erase(kesuctl_t *k)
{
    char errstr[512], idx_hex[65] = "";
    pg_t *pg = NULL;
    PGresult *res = NULL;
    int rc = 1, purged = 0;
    int by_case = k->case_no && *k->case_no, by_phone = k->phone && *k->phone;
    if (by_case == by_phone) {
        fprintf(stderr, "kesuctl: complainant erase needs --case CASE_NO or --phone NUMBER "
                        "(with --pii.key), and --reason TEXT\n");
        return 2;
    }
    if (!k->reason || !*k->reason) {
        fprintf(stderr, "kesuctl: --reason is required: the erasure log records why\n");
        return 2;
    }
    if (by_phone) {
        crypto_keys_t keys;
        char norm[32];
        uint8_t idx[32];
        if (!k->pii_key || !*k->pii_key ||
            crypto_keys_load(&keys, k->pii_key, errstr, sizeof(errstr)) != 0) {
            fprintf(stderr, "kesuctl: --phone needs the PII key (--pii.key or KESU_PII_KEY)%s%s\n",
                    k->pii_key && *k->pii_key ? ": " : "", k->pii_key && *k->pii_key ? errstr : "");
            return 2;
        }
        if (crypto_phone_normalize(k->phone, norm, sizeof(norm)) != 0) {
            crypto_keys_wipe(&keys);
            fprintf(stderr, "kesuctl: --phone is not a phone number\n");
            return 2;
        }
        crypto_blind_index(&keys, norm, idx);
        util_hex(idx, sizeof(idx), idx_hex);
        OPENSSL_cleanse(norm, sizeof(norm));
        crypto_keys_wipe(&keys);
    }
    pg = pg_new(k->pg);
    if (pg_connect(pg, 5000, errstr, sizeof(errstr)) != 0 ||
        pg_begin(pg, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    const char *v[3] = {by_case ? k->case_no : idx_hex, k->actor, k->reason};
    res = pg_exec_stmt(pg, by_case ? &er_by_case : &er_by_phone, v, PGRES_TUPLES_OK, errstr,
                       sizeof(errstr));
    if (!res || pg_commit(pg, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "kesuctl: %s\n", errstr);
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int p = strcmp(pg_get(res, i, "purged"), "t") == 0;
        purged += p;
        printf("%s %s\n", p ? "erased" : "already erased", pg_get(res, i, "case_no"));
    }
    if (PQntuples(res) == 0) {
        fprintf(stderr, "kesuctl: no complainant found (anonymous case, or unknown %s)\n",
                by_case ? "case number" : "phone number");
        goto out;
    }
    printf("%d complainant record(s) erased; logged in pii_erasures\n", purged);
    rc = 0;
out:
    PQclear(res);
    if (pg && pg->in_tx)
        pg_rollback(pg);
    pg_destroy(pg);
    return rc;
}
