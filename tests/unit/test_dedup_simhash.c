/*
 * Unit: the duplicate search's SimHash (services/classifier/dedup.c).
 *
 * The counting version (decision 0045) must give exactly the fingerprint the
 * first version gave - every stored fingerprint was made by it, and a case
 * is compared with fingerprints of months ago. The first version is kept here
 * as the reference: texts of every kind (Han, Latin letters, digits,
 * punctuation, NULL and empty fields, one character, a text longer than the
 * 16-bit counters hold) give the same 64 bits. Near-identical texts are near,
 * unrelated ones far.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "textfeat.h"

/* the first version, one signed vote per bit and shingle */
static uint64_t reference(const char *title, const char *body)
{
    int64_t v[64] = {0};
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
            if (c1) {
                uint64_t h = textfeat_mix64((uint64_t)cp | (uint64_t)c1 << 21 | 1ull << 63);
                for (int b = 0; b < 64; b++)
                    v[b] += (h >> b) & 1 ? 1 : -1;
            }
            if (c1 && c2) {
                uint64_t h = textfeat_mix64((uint64_t)cp | (uint64_t)c1 << 21 | (uint64_t)c2 << 42);
                for (int b = 0; b < 64; b++)
                    v[b] += (h >> b) & 1 ? 1 : -1;
            }
            c2 = c1;
            c1 = cp;
        }
    }
    uint64_t out = 0;
    for (int b = 0; b < 64; b++)
        if (v[b] > 0)
            out |= 1ull << b;
    return out;
}

static void same(const char *title, const char *body)
{
    uint64_t want = reference(title, body), got = dedup_simhash(title, body);
    if (want != got)
        fail_msg("simhash of [%.40s] [%.40s]: %016llx, the first version %016llx",
                 title ? title : "(null)", body ? body : "(null)", (unsigned long long)got,
                 (unsigned long long)want);
}

static void test_fixed_texts(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "",
        "路",
        "路灯",
        "小区门口路灯坏了三天，晚上出行很不方便，请尽快维修",
        "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水！",
        "Street light out at 5th Ave and 42nd St since 2024-03-01",
        "noise complaint: construction after 22:00, 3 nights in a row",
        "楼下KTV噪音扰民，每天到凌晨2点，110报警无果",
        "！！！，，，。。。",
        "a",
        "ab1",
    };
    size_t n = sizeof(texts) / sizeof(texts[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            same(texts[i], texts[j]);
    same(NULL, texts[3]);
    same(texts[3], NULL);
    same(NULL, NULL);
}

/* texts drawn from a fixed sequence: Han, Latin, digits and separators mixed */
static void test_generated_texts(void **state)
{
    (void)state;
    static const char *const pieces[] = {"路", "灯", "水", "噪", "音", "物", "业", "费", "a", "z",
                                         "7", "0", " ", "，", "。", "-", "市", "民", "投", "诉"};
    uint64_t x = 88172645463325252ull;
    char buf[4096];
    for (int t = 0; t < 2000; t++) {
        size_t used = 0, len = 1 + (size_t)(t % 400);
        for (size_t k = 0; k < len; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            const char *p = pieces[x % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);
            if (used + pl + 1 >= sizeof(buf))
                break;
            memcpy(buf + used, p, pl);
            used += pl;
        }
        buf[used] = '\0';
        same(t % 3 ? "投诉" : NULL, buf);
    }
}

/* more shingles than a 16-bit counter holds: the counts are folded, not lost */
static void test_long_text(void **state)
{
    (void)state;
    static const char *const han[] = {"路", "灯", "坏", "了", "三", "天", "水", "管", "漏"};
    size_t n = 120000, used = 0;
    char *buf = malloc(n * 3 + 1);
    assert_non_null(buf);
    uint64_t x = 2463534242ull;
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(buf + used, han[x % 9], 3);
        used += 3;
    }
    buf[used] = '\0';
    same("漏水", buf);
    free(buf);
}

static void test_near_and_far(void **state)
{
    (void)state;
    uint64_t a = dedup_simhash("人民路隧道积水",
                               "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水");
    uint64_t b = dedup_simhash("人民路隧道积水",
                               "人民路下穿隧道暴雨后严重积水，水深过膝，车辆无法通行，请尽快派人排水！");
    uint64_t c = dedup_simhash("学校食堂饭菜质量差",
                               "孩子所在小学的食堂饭菜质量很差，经常有剩饭，希望教育局检查");
    assert_true(dedup_distance(a, b) <= 12);
    assert_true(dedup_distance(a, c) > 18);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_texts),
        cmocka_unit_test(test_generated_texts),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_near_and_far),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
