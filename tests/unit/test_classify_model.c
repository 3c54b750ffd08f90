/*
 * Unit tests: the trained model.
 *
 * - reproducibility: training again with the shipped options (fixed seed)
 *   gives the very same bytes as the model the build made, and their
 *   SHA-256 is the one committed in deploy/config/classifier/model.sha256
 *   (a change of data, features or training shows up here and is
 *   committed deliberately);
 * - a damaged model file is refused with a reason; the live predictor and
 *   the training-time predictor agree; the three algorithms all learn
 *   (held-out accuracy well above chance on a fixed split).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"
#include "crypto.h"
#include "model.h"
#include "util.h"

#define DATA KESU_SOURCE_DIR "/../shared/data"

static const char *source_dir(void)
{
    const char *d = getenv("KESU_SOURCE_DIR");
    return d && *d ? d : KESU_SOURCE_DIR;
}

static int file_sha(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    uint8_t sha[32];
    crypto_sha256(b, got, sha);
    util_hex(sha, 32, hex);
    free(b);
    return got == (size_t)n ? 0 : -1;
}

static void test_reproducible(void **state)
{
    char cmd[4096], out[] = "/tmp/kesu-model-XXXXXX", path[64], a[65], b[65], want[65] = "";
    const char *bin = getenv("KESU_BIN_DIR");
    assert_non_null(mkdtemp(out));
    snprintf(path, sizeof(path), "%s/model.bin", out);
    snprintf(cmd, sizeof(cmd), "%s/kesu-classifier train --out %s > /dev/null 2>&1",
             bin && *bin ? bin : ".", path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(file_sha(path, a), 0);
    assert_int_equal(file_sha(CLASSIFY_DEFAULT_MODEL, b), 0);
    assert_string_equal(a, b);
    snprintf(cmd, sizeof(cmd), "%s/deploy/config/classifier/model.sha256", source_dir());
    FILE *f = fopen(cmd, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%64s", want), 1);
    fclose(f);
    if (strcmp(a, want) != 0)
        fail_msg("retrained model %s differs from the committed checksum %s", a, want);
    unlink(path);
    rmdir(out);
}

static void test_damaged_file(void **state)
{
    char err[512], path[] = "/tmp/kesu-model-bad-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    FILE *src = fopen(CLASSIFY_DEFAULT_MODEL, "rb");
    assert_non_null(src);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), src);
    fclose(src);
    /* truncated */
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    assert_null(model_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, "checksum mismatch"));
    /* not a model */
    f = fopen(path, "wb");
    fputs("{\"hello\": 1}", f);
    fclose(f);
    assert_null(model_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, "bad magic"));
    assert_null(model_load("/nonexistent/model.bin", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/model.bin"));
    unlink(path);
}

static void test_algorithms_learn(void **state)
{
    char err[512];
    model_data_t lab, tax;
    model_train_opts_t o;
    model_train_opts_default(&o);
    model_data_init(&lab);
    model_data_init(&tax);
    assert_true(model_data_load(&lab, DATA "/teddy2020c-labeled-train.jsonl", "labeled", o.bits,
                                o.title_weight, 1.0f, err, sizeof(err)) > 100);
    assert_int_equal(lab.nlabels, 7);
    /* fixed split: every 4th message held out */
    size_t *train = malloc(lab.n * sizeof(size_t)), nt = 0;
    for (size_t i = 0; i < lab.n; i++)
        if (i % 4)
            train[nt++] = i;
    uint32_t *buf = malloc(MODEL_FEATURE_CAP * sizeof(uint32_t));
    for (int a = 0; a < 3; a++) {
        o.algo = (model_algo_t)a;
        o.self_rounds = 0; /* fast: labeled data only */
        model_t *m = model_train(&lab, train, nt, NULL, NULL, &o, err, sizeof(err));
        assert_non_null(m);
        int right = 0, held = 0;
        for (size_t i = 0; i < lab.n; i += 4) {
            float c;
            right += model_predict_doc(m, &lab.docs[i], NULL, &c) == lab.docs[i].label;
            held++;
        }
        fprintf(stderr, "%s: held-out accuracy %.3f (%d/%d), labeled data only\n",
                model_algo_name(o.algo), (double)right / held, right, held);
        assert_true((double)right / held > 0.5); /* chance is ~0.2 */
        model_free(m);
    }
    free(buf);
    free(train);
    model_data_free(&lab);
    model_data_free(&tax);
}

static void test_live_predictor_agrees(void **state)
{
    char err[512];
    model_t *m = model_load(CLASSIFY_DEFAULT_MODEL, err, sizeof(err));
    if (!m)
        fail_msg("%s", err);
    model_data_t d;
    model_data_init(&d);
    assert_true(model_data_load(&d, DATA "/teddy2020c-test-unlabeled.jsonl", "unlabeled", m->bits,
                                m->title_weight, 1.0f, err, sizeof(err)) > 100);
    FILE *f = fopen(DATA "/teddy2020c-test-unlabeled.jsonl", "r");
    uint32_t *buf = malloc(MODEL_FEATURE_CAP * sizeof(uint32_t));
    char *line = NULL;
    size_t cap = 0, i = 0;
    assert_non_null(f);
    /* doc-based (training) and text-based (live) scoring give the same answer */
    while (i < d.n && i < 300 && getline(&line, &cap, f) > 0) {
        json_t *row = json_loads(line, 0, NULL);
        float c1, c2;
        int k1 = model_predict_doc(m, &d.docs[i], NULL, &c1);
        int k2 = model_predict(m, json_string_value(json_object_get(row, "title")),
                               json_string_value(json_object_get(row, "body")), buf,
                               MODEL_FEATURE_CAP, NULL, &c2);
        assert_int_equal(k1, k2);
        assert_true(c1 - c2 < 1e-3 && c2 - c1 < 1e-3);
        assert_true(c1 > 0 && c1 <= 1.0001f);
        json_decref(row);
        i++;
    }
    free(line);
    free(buf);
    fclose(f);
    model_data_free(&d);
    model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_damaged_file),
        cmocka_unit_test(test_algorithms_learn),
        cmocka_unit_test(test_live_predictor_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
