/*
 * test_crypto: PII masking rules (table-driven), AES-256-GCM round trip
 * and tamper detection, key loading errors, phone normalisation and
 * masking, blind index.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "util.h"

static const char *const test_key_hex =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/* ------------------------------------------------------------ mask_text */

typedef struct mask_case {
    const char *name;
    const char *in;
    const char *want;
} mask_case_t;

static const mask_case_t mask_cases[] = {
    {"no pii ascii", "the bus was late again", "the bus was late again"},
    {"no pii chinese", "公交车又晚点了，司机态度很差。", "公交车又晚点了，司机态度很差。"},
    {"empty", "", ""},
    {"mobile alone", "13812341234", "138****1234"},
    {"mobile in chinese", "请联系我13812341234谢谢", "请联系我138****1234谢谢"},
    {"two mobiles", "13812341234/13998765432", "138****1234/139****5432"},
    {"mobile 19x", "电话：19912345678。", "电话：199****5678。"},
    {"11 digits not mobile", "12345678901", "12345678901"},
    {"order number", "订单号A12345678901已付款", "订单号A12345678901已付款"},
    {"mobile glued to letter", "订单A13812341234", "订单A138****1234"},
    {"mobile glued to letters both", "ab13812341234cd", "ab138****1234cd"},
    {"mobile dashes", "电话138-1234-5678", "电话138-****-5678"},
    {"mobile spaces", "138 1234 5678 找我", "138 **** 5678 找我"},
    {"mobile dashes letters", "138-1234-5678abc", "138-****-5678abc"},
    {"mobile 3-8 split", "138 12345678", "138 ****5678"},
    {"plus86 space", "+86 13812341234", "+86 138****1234"},
    {"plus86 glued", "+8613812341234", "+86138****1234"},
    {"0086 glued", "008613812341234", "0086138****1234"},
    {"0086 spaced groups", "0086 138 1234 5678", "0086 138 **** 5678"},
    {"id 18 digits", "身份证110105194912310021", "身份证110105********0021"},
    {"id with X", "身份证号11010519491231002X。", "身份证号110105********002X。"},
    {"id with x", "11010519491231002x", "110105********002x"},
    {"id with X then letters", "11010519491231002Xyz", "11010519491231002Xyz"},
    {"id glued to letter", "ID:A110105194912310021", "ID:A110105********0021"},
    {"19 digits", "1101051949123100211", "1101051949123100211"},
    {"long run with mobile inside", "2024138123412340000123", "2024138123412340000123"},
    {"17 digits", "12345678901234567", "12345678901234567"},
    {"13 digits not 86", "号码1234567890123", "号码1234567890123"},
    {"landline 8", "座机88886666", "座机******66"},
    {"landline 7", "tel: 8888666.", "tel: *****66."},
    {"landline area dash", "电话：010-12345678", "电话：***-******78"},
    {"landline area 4 groups", "0755-1234-5678", "****-****-**78"},
    {"landline area glued", "01012345678", "*********78"},
    {"landline next to letters", "ABC1234567", "ABC1234567"},
    {"six digits", "验证码123456", "验证码123456"},
    {"decimal pi", "圆周率3.1415926", "圆周率3.1415926"},
    {"decimal amount", "金额1234567.89元", "金额1234567.89元"},
    {"dates and counts", "共3人，2024年10月1日", "共3人，2024年10月1日"},
    {"iso date", "2024-10-01 09:30", "2024-10-01 09:30"},
    {"email", "邮箱zhang.san@example.com，谢谢", "邮箱z***@example.com，谢谢"},
    {"email short", "a@b.cn", "a***@b.cn"},
    {"email digits local", "13812341234@qq.com", "1***@qq.com"},
    {"email digits domain", "x_y@163.com", "x***@163.com"},
    {"email trailing dot", "mail me at li@example.org.", "mail me at l***@example.org."},
    {"not email no dot", "foo@bar is not", "foo@bar is not"},
    {"not email empty local", "@example.com", "@example.com"},
    {"fullwidth mobile", "电话１３８１２３４１２３４", "电话１３８****１２３４"},
    {"invalid utf8 kept", "\xff" "13812341234" "\xfe", "\xff" "138****1234" "\xfe"},
    {"everything",
     "联系人：张三，电话13812341234，身份证110105194912310021，邮箱zs@qq.com，座机010-88886666",
     "联系人：张三，电话138****1234，身份证110105********0021，邮箱z***@qq.com，座机***-******66"},
};

static void test_mask_text_table(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof(mask_cases) / sizeof(mask_cases[0]); i++) {
        const mask_case_t *c = &mask_cases[i];
        char *got = crypto_mask_text(c->in);
        assert_non_null(got);
        if (strcmp(got, c->want) != 0) {
            print_error("mask case \"%s\": in \"%s\"\n  want \"%s\"\n  got  \"%s\"\n", c->name,
                        c->in, c->want, got);
            failed++;
        }
        assert_true(util_utf8_valid(got, strlen(got)) ||
                    !util_utf8_valid(c->in, strlen(c->in)));
        free(got);
    }
    assert_int_equal(failed, 0);
}

static void test_mask_text_null(void **state)
{
    (void)state;
    assert_null(crypto_mask_text(NULL));
}

/* --------------------------------------------------------- keys + AEAD */

static void test_keys_load_hex(void **state)
{
    (void)state;
    crypto_keys_t k, k2;
    char err[256] = "";
    assert_int_equal(crypto_keys_load(&k, test_key_hex, err, sizeof(err)), 0);
    assert_int_equal(k.enc[0], 0x00);
    assert_int_equal(k.enc[31], 0x1f);
    /* idx = HMAC-SHA256(enc, "kesu-blind-index-v1") */
    uint8_t want[32];
    crypto_hmac_sha256(k.enc, 32, "kesu-blind-index-v1", 19, want);
    assert_memory_equal(k.idx, want, 32);
    /* upper-case hex is the same key */
    char upper[65];
    for (int i = 0; i < 64; i++)
        upper[i] = (char)(test_key_hex[i] >= 'a' ? test_key_hex[i] - 32 : test_key_hex[i]);
    upper[64] = '\0';
    assert_int_equal(crypto_keys_load(&k2, upper, err, sizeof(err)), 0);
    assert_memory_equal(&k, &k2, sizeof(k));
    crypto_keys_wipe(&k);
    crypto_keys_wipe(&k2);
}

static void test_keys_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/kesu_test_key_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "  \n%s\n\n", test_key_hex);
    fclose(f);
    char spec[64];
    snprintf(spec, sizeof(spec), "file:%s", path);
    crypto_keys_t k, k2;
    char err[256] = "";
    assert_int_equal(crypto_keys_load(&k, spec, err, sizeof(err)), 0);
    assert_int_equal(crypto_keys_load(&k2, test_key_hex, err, sizeof(err)), 0);
    assert_memory_equal(&k, &k2, sizeof(k));

    /* a file with a short key */
    f = fopen(path, "w");
    fprintf(f, "abcd\n");
    fclose(f);
    assert_int_equal(crypto_keys_load(&k, spec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "must be 64 hex characters (32 bytes), got 4 characters"));
    assert_non_null(strstr(err, path));
    unlink(path);

    /* a missing file */
    assert_int_equal(crypto_keys_load(&k, spec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open pii key file"));
    assert_non_null(strstr(err, "No such file"));
}

typedef struct key_err_case {
    const char *spec;
    const char *want;
} key_err_case_t;

static void test_keys_load_errors(void **state)
{
    (void)state;
    static const key_err_case_t cases[] = {
        {NULL, "pii key is not set"},
        {"", "pii key is not set"},
        {"abc", "pii key must be 64 hex characters (32 bytes), got 3 characters"},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00",
         "got 66 characters"},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
         "character 64 is not a hex digit"},
        {"0000000000000000000000000000000000000000000000000000000000000000", "all zeros"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        crypto_keys_t k;
        char err[256] = "";
        memset(&k, 0xaa, sizeof(k));
        assert_int_equal(crypto_keys_load(&k, cases[i].spec, err, sizeof(err)), -1);
        if (!strstr(err, cases[i].want))
            fail_msg("key case %zu: want \"%s\" in \"%s\"", i, cases[i].want, err);
        /* the key material never leaks into the message */
        if (cases[i].spec && strlen(cases[i].spec) > 8)
            assert_null(strstr(err, cases[i].spec));
        /* a failed load leaves no key behind */
        static const crypto_keys_t zero;
        assert_memory_equal(&k, &zero, sizeof(k));
    }
}

static void test_encrypt_roundtrip(void **state)
{
    (void)state;
    crypto_keys_t k;
    char err[256] = "";
    assert_int_equal(crypto_keys_load(&k, test_key_hex, err, sizeof(err)), 0);
    const char *texts[] = {"", "1", "13812341234", "张三 zhang.san@example.com",
                           "a longer plaintext that spans more than one AES block of sixteen"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t n = strlen(texts[i]);
        uint8_t *ct = NULL, *pt = NULL;
        size_t ct_len = 0, pt_len = 0;
        assert_int_equal(
            crypto_encrypt(&k, (const uint8_t *)texts[i], n, &ct, &ct_len, err, sizeof(err)), 0);
        assert_int_equal(ct_len, n + CRYPTO_OVERHEAD);
        assert_int_equal(ct[0], 0x01);
        assert_int_equal(crypto_decrypt(&k, ct, ct_len, &pt, &pt_len, err, sizeof(err)), 0);
        assert_int_equal(pt_len, n);
        assert_string_equal((char *)pt, texts[i]);
        free(ct);
        free(pt);
    }
    /* two encryptions of the same text differ (random nonce) */
    uint8_t *a = NULL, *b = NULL;
    size_t al, bl;
    assert_int_equal(crypto_encrypt(&k, (const uint8_t *)"x", 1, &a, &al, err, sizeof(err)), 0);
    assert_int_equal(crypto_encrypt(&k, (const uint8_t *)"x", 1, &b, &bl, err, sizeof(err)), 0);
    assert_int_equal(al, bl);
    assert_memory_not_equal(a, b, al);
    free(a);
    free(b);
}

static void test_decrypt_tamper(void **state)
{
    (void)state;
    crypto_keys_t k, other;
    char err[256] = "";
    assert_int_equal(crypto_keys_load(&k, test_key_hex, err, sizeof(err)), 0);
    assert_int_equal(
        crypto_keys_load(&other,
                         "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", err,
                         sizeof(err)),
        0);
    const char *msg = "13812341234";
    uint8_t *ct = NULL, *pt = NULL;
    size_t ct_len = 0, pt_len = 0;
    assert_int_equal(
        crypto_encrypt(&k, (const uint8_t *)msg, strlen(msg), &ct, &ct_len, err, sizeof(err)), 0);

    /* flip one bit anywhere after the version byte: nonce, ciphertext, tag */
    for (size_t i = 1; i < ct_len; i++) {
        ct[i] ^= 0x01;
        pt = (uint8_t *)"sentinel";
        assert_int_equal(crypto_decrypt(&k, ct, ct_len, &pt, &pt_len, err, sizeof(err)), -1);
        assert_null(pt);
        assert_non_null(strstr(err, "authentication tag mismatch"));
        ct[i] ^= 0x01;
    }
    /* wrong key */
    assert_int_equal(crypto_decrypt(&other, ct, ct_len, &pt, &pt_len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "authentication tag mismatch"));
    /* truncated */
    assert_int_equal(crypto_decrypt(&k, ct, ct_len - 1, &pt, &pt_len, err, sizeof(err)), -1);
    assert_int_equal(crypto_decrypt(&k, ct, 10, &pt, &pt_len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too short"));
    /* unknown version */
    ct[0] = 0x02;
    assert_int_equal(crypto_decrypt(&k, ct, ct_len, &pt, &pt_len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unsupported ciphertext version 0x02"));
    ct[0] = 0x01;
    /* untouched still decrypts */
    assert_int_equal(crypto_decrypt(&k, ct, ct_len, &pt, &pt_len, err, sizeof(err)), 0);
    assert_string_equal((char *)pt, msg);
    free(pt);
    free(ct);
}

/* ------------------------------------------------------------- hashes */

static void test_sha256_hmac_vectors(void **state)
{
    (void)state;
    uint8_t out[32];
    char hex[65];
    crypto_sha256("abc", 3, out);
    util_hex(out, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha256("", 0, out);
    util_hex(out, 32, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* RFC 4231 test case 2 */
    crypto_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, out);
    util_hex(out, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    uint8_t r1[16] = {0}, r2[16] = {0};
    crypto_random(r1, sizeof(r1));
    crypto_random(r2, sizeof(r2));
    assert_memory_not_equal(r1, r2, sizeof(r1));
}

/* -------------------------------------------------------------- phones */

typedef struct norm_case {
    const char *in;
    int rc;
    const char *want;
} norm_case_t;

static void test_phone_normalize(void **state)
{
    (void)state;
    static const norm_case_t cases[] = {
        {"13812341234", 0, "13812341234"},
        {"+86 138-1234-1234", 0, "13812341234"},
        {"+8613812341234", 0, "13812341234"},
        {"8613812341234", 0, "13812341234"},
        {"0086 138 1234 1234", 0, "13812341234"},
        {"(010) 8888-6666", 0, "01088886666"},
        {"86 12345", 0, "8612345"},          /* 86 kept: not followed by a mobile */
        {"861234567890", 0, "861234567890"}, /* 12 digits: not 86 + mobile */
        {"１３８１２３４１２３４", 0, "13812341234"},
        {"12345", 0, "12345"},
        {"1234", -1, ""},
        {"+86", -1, ""},
        {"", -1, ""},
        {"no digits", -1, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32] = "junk";
        int rc = crypto_phone_normalize(cases[i].in, out, sizeof(out));
        if (rc != cases[i].rc || strcmp(out, cases[i].want) != 0)
            fail_msg("normalize \"%s\": want %d \"%s\", got %d \"%s\"", cases[i].in, cases[i].rc,
                     cases[i].want, rc, out);
    }
    char small[6];
    assert_int_equal(crypto_phone_normalize("13812341234", small, sizeof(small)), -1);
    assert_string_equal(small, "");
}

static void test_mask_phone(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"13812341234", "138****1234"}, {"01088886666", "010****6666"},
        {"88886666", "88****66"},       {"12345", "12*45"},
        {"123456789012", "12********12"}, {"1234", "****"},
        {"", "*"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        crypto_mask_phone(cases[i][0], out, sizeof(out));
        if (strcmp(out, cases[i][1]) != 0)
            fail_msg("mask_phone \"%s\": want \"%s\", got \"%s\"", cases[i][0], cases[i][1], out);
    }
    char small[5];
    crypto_mask_phone("13812341234", small, sizeof(small));
    assert_string_equal(small, "138*");
}

static void test_blind_index(void **state)
{
    (void)state;
    crypto_keys_t k, other;
    char err[256];
    assert_int_equal(crypto_keys_load(&k, test_key_hex, err, sizeof(err)), 0);
    assert_int_equal(
        crypto_keys_load(&other,
                         "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", err,
                         sizeof(err)),
        0);
    char n1[32], n2[32];
    assert_int_equal(crypto_phone_normalize("+86 138 1234 1234", n1, sizeof(n1)), 0);
    assert_int_equal(crypto_phone_normalize("138-1234-1234", n2, sizeof(n2)), 0);
    uint8_t a[32], b[32], c[32], want[32];
    crypto_blind_index(&k, n1, a);
    crypto_blind_index(&k, n2, b);
    crypto_blind_index(&other, n1, c);
    assert_memory_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    crypto_hmac_sha256(k.idx, 32, "13812341234", 11, want);
    assert_memory_equal(a, want, 32);
    /* the index key is not the encryption key */
    assert_memory_not_equal(k.idx, k.enc, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_text_table),   cmocka_unit_test(test_mask_text_null),
        cmocka_unit_test(test_keys_load_hex),     cmocka_unit_test(test_keys_load_file),
        cmocka_unit_test(test_keys_load_errors),  cmocka_unit_test(test_encrypt_roundtrip),
        cmocka_unit_test(test_decrypt_tamper),    cmocka_unit_test(test_sha256_hmac_vectors),
        cmocka_unit_test(test_phone_normalize),   cmocka_unit_test(test_mask_phone),
        cmocka_unit_test(test_blind_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
