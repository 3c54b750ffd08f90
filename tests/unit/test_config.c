/* Unit tests: config precedence defaults < file < environment < flags, and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char *s_pg, *s_name;
static int i_batch, b_flag;

static const config_key_t keys[] = {
    {"pg", CONFIG_STR, &s_pg, "default-pg", "pg", 1},
    {"svc.name", CONFIG_STR, &s_name, "default-name", "name", 0},
    {"batch.max", CONFIG_INT, &i_batch, "10", "batch", 0},
    {"flag", CONFIG_BOOL, &b_flag, "false", "flag", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static char file_path[64];

static int setup(void **state)
{
    unsetenv("KESU_PG");
    unsetenv("KESU_SVC_NAME");
    unsetenv("KESU_BATCH_MAX");
    unsetenv("KESU_FLAG");
    unsetenv("KESU_CONFIG");
    unsetenv("KESU_KAFKA_LINGER_MS");
    snprintf(file_path, sizeof(file_path), "/tmp/kesu-config-test-%d.conf", (int)getpid());
    FILE *f = fopen(file_path, "w");
    fprintf(f, "# comment\n\npg = file-pg\nsvc.name = file-name\nbatch.max=20\n"
               "kafka.linger.ms = 7\nkafka.client.id = from-file\n");
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    unlink(file_path);
    return 0;
}

static int load(config_t *c, int argc, char **argv, char *err)
{
    config_init(c, "test", "usage");
    config_add_table(c, keys);
    return config_load(c, argc, argv, err, 256);
}

static void test_defaults(void **state)
{
    config_t c;
    char err[256];
    char *argv[] = {"prog", NULL};
    assert_int_equal(load(&c, 1, argv, err), 0);
    assert_string_equal(s_pg, "default-pg");
    assert_int_equal(i_batch, 10);
    assert_int_equal(b_flag, 0);
    config_free(&c);
}

static void test_precedence(void **state)
{
    config_t c;
    char err[256];
    char *argv[] = {"prog", "--config", file_path, "--batch.max", "40", "-X", "linger.ms=9", NULL};
    setenv("KESU_SVC_NAME", "env-name", 1);
    setenv("KESU_BATCH_MAX", "30", 1);
    setenv("KESU_KAFKA_LINGER_MS", "8", 1);
    assert_int_equal(load(&c, 7, argv, err), 0);
    assert_string_equal(s_pg, "file-pg");        /* file over default */
    assert_string_equal(s_name, "env-name");     /* env over file */
    assert_int_equal(i_batch, 40);               /* flag over env */
    assert_string_equal(config_kafka_get(&c, "linger.ms"), "9"); /* -X over env over file */
    assert_string_equal(config_kafka_get(&c, "client.id"), "from-file");
    config_free(&c);
    unsetenv("KESU_SVC_NAME");
    unsetenv("KESU_BATCH_MAX");
    unsetenv("KESU_KAFKA_LINGER_MS");
}

static void test_env_config_file_and_equals_flags(void **state)
{
    config_t c;
    char err[256];
    char *argv[] = {"prog", "--svc.name=flag-name", "--flag", "positional", NULL};
    setenv("KESU_CONFIG", file_path, 1);
    assert_int_equal(load(&c, 4, argv, err), 0);
    assert_string_equal(s_pg, "file-pg");
    assert_string_equal(s_name, "flag-name");
    assert_int_equal(b_flag, 1);
    assert_int_equal(c.arg_cnt, 1);
    assert_string_equal(c.args[0], "positional");
    config_free(&c);
    unsetenv("KESU_CONFIG");
}

static void test_errors_name_the_key(void **state)
{
    config_t c;
    char err[256];
    char *a1[] = {"prog", "--nope=1", NULL};
    assert_int_equal(load(&c, 2, a1, err), -1);
    assert_non_null(strstr(err, "nope"));
    config_free(&c);

    char *a2[] = {"prog", "--batch.max", "ten", NULL};
    assert_int_equal(load(&c, 3, a2, err), -1);
    assert_non_null(strstr(err, "batch.max"));
    assert_non_null(strstr(err, "ten"));
    config_free(&c);

    setenv("KESU_FLAG", "maybe", 1);
    char *a3[] = {"prog", NULL};
    assert_int_equal(load(&c, 1, a3, err), -1);
    assert_non_null(strstr(err, "KESU_FLAG"));
    config_free(&c);
    unsetenv("KESU_FLAG");

    char *a4[] = {"prog", "--config", "/nonexistent/kesu.conf", NULL};
    assert_int_equal(load(&c, 3, a4, err), -1);
    assert_non_null(strstr(err, "/nonexistent/kesu.conf"));
    config_free(&c);

    char *a5[] = {"prog", "--batch.max", NULL};
    assert_int_equal(load(&c, 2, a5, err), -1);
    assert_non_null(strstr(err, "batch.max"));
    config_free(&c);
}

static void test_bad_file_line(void **state)
{
    config_t c;
    char err[256], path[80];
    snprintf(path, sizeof(path), "/tmp/kesu-config-bad-%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    fprintf(f, "pg = x\nthis line has no equals\n");
    fclose(f);
    char *argv[] = {"prog", "--config", path, NULL};
    assert_int_equal(load(&c, 3, argv, err), -1);
    assert_non_null(strstr(err, ":2:"));
    config_free(&c);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_env_config_file_and_equals_flags),
        cmocka_unit_test(test_errors_name_the_key),
        cmocka_unit_test(test_bad_file_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
