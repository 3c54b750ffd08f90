/*
 * calendar: load a working calendar and do working-time arithmetic.
 *
 * Everything is done in "local days": day number = floor((t + offset) /
 * 86400000), day 0 = 1970-01-01 local. A day is a working day by its
 * override (holiday: no; make-up day: yes) or else by its weekday. The
 * arithmetic walks day by day, skipping whole working days at once, so
 * adding 15 working days costs ~21 iterations.
 */
#include "calendar.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CAL_DAY_MS 86400000LL
#define CAL_MAX_DAYS 3660 /* ten years: a calendar with no working time in that span is broken */

typedef struct cal_override {
    int64_t day;      /**< local day number */
    int work;         /**< 1 make-up working day, 0 holiday */
    const char *name; /**< points into the calendar's names */
} cal_override_t;

struct calendar {
    char *name;                                   /**< owned */
    char *tz;                                     /**< owned */
    int offset_min;                               /**< local - UTC */
    int64_t period_start[CALENDAR_MAX_PERIODS];   /**< ms after local midnight, ascending */
    int64_t period_end[CALENDAR_MAX_PERIODS];     /**< > start, <= next start, <= 24 h */
    int nperiods;                                 /**< >= 1 */
    int64_t day_ms;                               /**< sum of the periods */
    int weekend[7];                               /**< 1 = day off, index 0 = Monday */
    cal_override_t *ov;                           /**< owned, sorted by day, unique */
    size_t nov;
    char **names;                                 /**< owned strings the overrides point to */
    size_t nnames;
    int years[64];                                /**< years the file covers */
    int nyears;
};

/* ---- dates ---- */

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm) */
static int64_t cal_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void cal_civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t cal_floor_div(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* 0 = Monday; 1970-01-01 was a Thursday */
static int cal_weekday(int64_t day)
{
    int64_t w = (day + 3) % 7;
    return (int)(w < 0 ? w + 7 : w);
}

/* "YYYY-MM-DD" -> day number; -1 on a malformed or impossible date */
static int cal_parse_date(const char *s, int64_t *day, int *year)
{
    int y, m, d, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || s[n])
        return -1;
    if (m < 1 || m > 12 || d < 1 || d > 31 || y < 1970 || y > 2200)
        return -1;
    int64_t z = cal_days_from_civil(y, m, d);
    int y2, m2, d2;
    cal_civil_from_days(z, &y2, &m2, &d2);
    if (y2 != y || m2 != m || d2 != d)
        return -1; /* 2026-02-30 */
    *day = z;
    if (year)
        *year = y;
    return 0;
}

/* "HH:MM" -> ms after midnight; "24:00" allowed as an end */
static int cal_parse_hm(const char *s, int64_t *ms)
{
    int h, mi, n = 0;
    if (!s || sscanf(s, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5 || s[n])
        return -1;
    if (h < 0 || h > 24 || mi < 0 || mi > 59 || (h == 24 && mi != 0))
        return -1;
    *ms = ((int64_t)h * 60 + mi) * 60000;
    return 0;
}

/* ---- loading ---- */

static int cal_ov_cmp(const void *a, const void *b)
{
    const cal_override_t *x = a, *y = b;
    return x->day < y->day ? -1 : x->day > y->day;
}

static const char *cal_keep_name(calendar_t *cal, const char *s)
{
    char **n = realloc(cal->names, (cal->nnames + 1) * sizeof(*n));
    if (!n)
        return NULL;
    cal->names = n;
    n[cal->nnames] = strdup(s ? s : "");
    return n[cal->nnames] ? n[cal->nnames++] : NULL;
}

static int cal_add_override(calendar_t *cal, int64_t day, int work, const char *name)
{
    cal_override_t *o = realloc(cal->ov, (cal->nov + 1) * sizeof(*o));
    if (!o)
        return -1;
    cal->ov = o;
    o[cal->nov].day = day;
    o[cal->nov].work = work;
    o[cal->nov].name = cal_keep_name(cal, name);
    if (!o[cal->nov].name)
        return -1;
    cal->nov++;
    return 0;
}

static int cal_parse_hours(calendar_t *cal, const char *file, json_t *root, char *errstr,
                           size_t errstr_size)
{
    json_t *wh = json_object_get(root, "work_hours"), *p;
    size_t i;
    if (!json_is_array(wh) || json_array_size(wh) == 0 ||
        json_array_size(wh) > CALENDAR_MAX_PERIODS) {
        snprintf(errstr, errstr_size,
                 "%s: work_hours: must be a list of 1 to %d [\"HH:MM\", \"HH:MM\"] pairs", file,
                 CALENDAR_MAX_PERIODS);
        return -1;
    }
    json_array_foreach(wh, i, p)
    {
        int64_t s, e;
        if (!json_is_array(p) || json_array_size(p) != 2 ||
            cal_parse_hm(json_string_value(json_array_get(p, 0)), &s) != 0 ||
            cal_parse_hm(json_string_value(json_array_get(p, 1)), &e) != 0 || e <= s) {
            snprintf(errstr, errstr_size,
                     "%s: work_hours[%zu]: must be [\"HH:MM\", \"HH:MM\"] with start before end",
                     file, i);
            return -1;
        }
        if (i > 0 && s < cal->period_end[i - 1]) {
            snprintf(errstr, errstr_size,
                     "%s: work_hours[%zu]: starts before work_hours[%zu] ends (periods must be "
                     "in order and not overlap)",
                     file, i, i - 1);
            return -1;
        }
        cal->period_start[i] = s;
        cal->period_end[i] = e;
        cal->day_ms += e - s;
        cal->nperiods++;
    }
    return 0;
}

static int cal_parse_weekend(calendar_t *cal, const char *file, json_t *root, char *errstr,
                             size_t errstr_size)
{
    static const char *const days[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    json_t *we = json_object_get(root, "weekend"), *v;
    size_t i;
    if (!we) {
        cal->weekend[5] = cal->weekend[6] = 1;
        return 0;
    }
    if (!json_is_array(we)) {
        snprintf(errstr, errstr_size, "%s: weekend: must be a list of mon..sun", file);
        return -1;
    }
    json_array_foreach(we, i, v)
    {
        const char *s = json_string_value(v);
        int k;
        for (k = 0; k < 7 && (!s || strcmp(s, days[k]) != 0); k++)
            ;
        if (k == 7) {
            snprintf(errstr, errstr_size, "%s: weekend[%zu]: not one of mon, tue, ..., sun", file,
                     i);
            return -1;
        }
        cal->weekend[k] = 1;
    }
    int off = 0;
    for (int k = 0; k < 7; k++)
        off += cal->weekend[k];
    if (off == 7) {
        snprintf(errstr, errstr_size, "%s: weekend: every day is off, no working time", file);
        return -1;
    }
    return 0;
}

static int cal_parse_year(calendar_t *cal, const char *file, const char *ykey, json_t *yv,
                          char *errstr, size_t errstr_size)
{
    json_t *list, *e;
    size_t i;
    char *end;
    long year = strtol(ykey, &end, 10);
    if (*end || year < 1970 || year > 2200 || !json_is_object(yv)) {
        snprintf(errstr, errstr_size, "%s: years.%s: key must be a year and value an object",
                 file, ykey);
        return -1;
    }
    if (cal->nyears == (int)(sizeof(cal->years) / sizeof(cal->years[0]))) {
        snprintf(errstr, errstr_size, "%s: years: too many years", file);
        return -1;
    }
    cal->years[cal->nyears++] = (int)year;
    list = json_object_get(yv, "holidays");
    if (list && !json_is_array(list)) {
        snprintf(errstr, errstr_size, "%s: years.%s.holidays: must be a list", file, ykey);
        return -1;
    }
    json_array_foreach(list, i, e)
    {
        int64_t from, to;
        int yf, yt;
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name || !*name ||
            cal_parse_date(json_string_value(json_object_get(e, "from")), &from, &yf) != 0 ||
            cal_parse_date(json_string_value(json_object_get(e, "to")), &to, &yt) != 0 ||
            to < from || to - from > 31) {
            snprintf(errstr, errstr_size,
                     "%s: years.%s.holidays[%zu]: needs name, from and to (YYYY-MM-DD, from <= "
                     "to, at most a month)",
                     file, ykey, i);
            return -1;
        }
        if (yf != year) {
            snprintf(errstr, errstr_size,
                     "%s: years.%s.holidays[%zu].from: %s is not in %s", file, ykey, i,
                     json_string_value(json_object_get(e, "from")), ykey);
            return -1;
        }
        for (int64_t d = from; d <= to; d++)
            if (cal_add_override(cal, d, 0, name) != 0)
                goto oom;
    }
    list = json_object_get(yv, "workdays");
    if (list && !json_is_array(list)) {
        snprintf(errstr, errstr_size, "%s: years.%s.workdays: must be a list", file, ykey);
        return -1;
    }
    json_array_foreach(list, i, e)
    {
        int64_t d;
        int yd;
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name || !*name ||
            cal_parse_date(json_string_value(json_object_get(e, "date")), &d, &yd) != 0 ||
            yd != year) {
            snprintf(errstr, errstr_size,
                     "%s: years.%s.workdays[%zu]: needs name and a date (YYYY-MM-DD) in %s", file,
                     ykey, i, ykey);
            return -1;
        }
        if (!cal->weekend[cal_weekday(d)]) {
            snprintf(errstr, errstr_size,
                     "%s: years.%s.workdays[%zu]: %s is a working day anyway (make-up days fall "
                     "on a weekend)",
                     file, ykey, i, json_string_value(json_object_get(e, "date")));
            return -1;
        }
        if (cal_add_override(cal, d, 1, name) != 0)
            goto oom;
    }
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

static calendar_t *cal_from_json(json_t *root, const char *file, char *errstr, size_t errstr_size)
{
    calendar_t *cal = calloc(1, sizeof(*cal));
    const char *s, *ykey;
    json_t *years, *yv;
    int sign = 1, oh, om, n = 0;
    if (!cal) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "%s: must be a JSON object", file);
        goto err;
    }
    s = json_string_value(json_object_get(root, "name"));
    cal->name = strdup(s && *s ? s : "unnamed");
    s = json_string_value(json_object_get(root, "time_zone"));
    cal->tz = strdup(s && *s ? s : "UTC");
    if (!cal->name || !cal->tz) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    s = json_string_value(json_object_get(root, "utc_offset"));
    if (!s || (s[0] != '+' && s[0] != '-') || sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 ||
        n != 5 || s[n + 1] || oh > 14 || om > 59) {
        snprintf(errstr, errstr_size, "%s: utc_offset: must be \"+HH:MM\" or \"-HH:MM\"", file);
        goto err;
    }
    if (s[0] == '-')
        sign = -1;
    cal->offset_min = sign * (oh * 60 + om);
    if (cal_parse_hours(cal, file, root, errstr, errstr_size) != 0 ||
        cal_parse_weekend(cal, file, root, errstr, errstr_size) != 0)
        goto err;
    years = json_object_get(root, "years");
    if (years && !json_is_object(years)) {
        snprintf(errstr, errstr_size, "%s: years: must be an object keyed by year", file);
        goto err;
    }
    json_object_foreach(years, ykey, yv)
    {
        if (cal_parse_year(cal, file, ykey, yv, errstr, errstr_size) != 0)
            goto err;
    }
    if (cal->nov)
        qsort(cal->ov, cal->nov, sizeof(*cal->ov), cal_ov_cmp);
    for (size_t i = 1; i < cal->nov; i++) {
        if (cal->ov[i].day == cal->ov[i - 1].day) {
            char d[16];
            int y, m, dd;
            cal_civil_from_days(cal->ov[i].day, &y, &m, &dd);
            snprintf(d, sizeof(d), "%04d-%02d-%02d", y, m, dd);
            snprintf(errstr, errstr_size, "%s: %s is listed twice (%s and %s)", file, d,
                     cal->ov[i - 1].name, cal->ov[i].name);
            goto err;
        }
    }
    return cal;
err:
    calendar_free(cal);
    return NULL;
}

calendar_t *calendar_load(const char *path, char *errstr, size_t errstr_size)
{
    json_t *root = config_json_load(path, NULL, errstr, errstr_size);
    calendar_t *x = root ? cal_from_json(root, path, errstr, errstr_size) : NULL;
    json_decref(root);
    return x;
}

calendar_t *calendar_parse(const char *text, const char *name, char *errstr, size_t errstr_size)
{
    json_t *root = config_json_load(name, text, errstr, errstr_size);
    calendar_t *x = root ? cal_from_json(root, name, errstr, errstr_size) : NULL;
    json_decref(root);
    return x;
}

void calendar_free(calendar_t *cal)
{
    if (!cal)
        return;
    for (size_t i = 0; i < cal->nnames; i++)
        free(cal->names[i]);
    free(cal->names);
    free(cal->ov);
    free(cal->name);
    free(cal->tz);
    free(cal);
}

const char *calendar_name(const calendar_t *cal)
{
    return cal->name;
}

const char *calendar_tz(const calendar_t *cal)
{
    return cal->tz;
}

int calendar_utc_offset_min(const calendar_t *cal)
{
    return cal->offset_min;
}

int64_t calendar_day_ms(const calendar_t *cal)
{
    return cal->day_ms;
}

int calendar_covers(const calendar_t *cal, int year)
{
    for (int i = 0; i < cal->nyears; i++)
        if (cal->years[i] == year)
            return 1;
    return 0;
}

/* ---- arithmetic ---- */

static const cal_override_t *cal_find(const calendar_t *cal, int64_t day)
{
    size_t lo = 0, hi = cal->nov;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cal->ov[mid].day < day)
            lo = mid + 1;
        else if (cal->ov[mid].day > day)
            hi = mid;
        else
            return &cal->ov[mid];
    }
    return NULL;
}

static int cal_day_works(const calendar_t *cal, int64_t day, const char **name)
{
    const cal_override_t *o = cal_find(cal, day);
    if (name)
        *name = o ? o->name : NULL;
    return o ? o->work : !cal->weekend[cal_weekday(day)];
}

static int64_t cal_local(const calendar_t *cal, int64_t t)
{
    return t + (int64_t)cal->offset_min * 60000;
}

int calendar_is_workday(const calendar_t *cal, int64_t t, const char **name)
{
    return cal_day_works(cal, cal_floor_div(cal_local(cal, t), CAL_DAY_MS), name);
}

int64_t calendar_add_work(const calendar_t *cal, int64_t t, int64_t work_ms)
{
    if (work_ms <= 0)
        return t;
    int64_t off = (int64_t)cal->offset_min * 60000;
    int64_t local = t + off;
    int64_t day = cal_floor_div(local, CAL_DAY_MS);
    int64_t pos = local - day * CAL_DAY_MS; /* ms into the day */
    int64_t rem = work_ms;
    for (int n = 0; n < CAL_MAX_DAYS; n++, day++, pos = 0) {
        if (!cal_day_works(cal, day, NULL))
            continue;
        if (pos == 0 && rem > cal->day_ms) {
            rem -= cal->day_ms; /* a whole working day */
            continue;
        }
        for (int i = 0; i < cal->nperiods; i++) {
            int64_t s = cal->period_start[i] > pos ? cal->period_start[i] : pos;
            int64_t e = cal->period_end[i];
            if (s >= e)
                continue;
            if (rem <= e - s)
                return day * CAL_DAY_MS + s + rem - off;
            rem -= e - s;
        }
    }
    return INT64_MAX;
}

int64_t calendar_add_work_days(const calendar_t *cal, int64_t t, int n)
{
    return calendar_add_work(cal, t, (int64_t)n * cal->day_ms);
}

/* working ms of day `day` inside [from, to) ms-of-day */
static int64_t cal_day_part(const calendar_t *cal, int64_t from, int64_t to)
{
    int64_t sum = 0;
    for (int i = 0; i < cal->nperiods; i++) {
        int64_t s = cal->period_start[i] > from ? cal->period_start[i] : from;
        int64_t e = cal->period_end[i] < to ? cal->period_end[i] : to;
        if (e > s)
            sum += e - s;
    }
    return sum;
}

int64_t calendar_work_between(const calendar_t *cal, int64_t a, int64_t b)
{
    if (b <= a)
        return 0;
    int64_t la = cal_local(cal, a), lb = cal_local(cal, b);
    int64_t da = cal_floor_div(la, CAL_DAY_MS), db = cal_floor_div(lb, CAL_DAY_MS);
    int64_t pa = la - da * CAL_DAY_MS, pb = lb - db * CAL_DAY_MS;
    if (da == db)
        return cal_day_works(cal, da, NULL) ? cal_day_part(cal, pa, pb) : 0;
    int64_t sum = cal_day_works(cal, da, NULL) ? cal_day_part(cal, pa, CAL_DAY_MS) : 0;
    for (int64_t d = da + 1; d < db; d++)
        if (cal_day_works(cal, d, NULL))
            sum += cal->day_ms;
    if (cal_day_works(cal, db, NULL))
        sum += cal_day_part(cal, 0, pb);
    return sum;
}

/* ---- formatting ---- */

void calendar_fmt_local(const calendar_t *cal, int64_t t, char *out, size_t out_size)
{
    int64_t local = cal_local(cal, t);
    int64_t day = cal_floor_div(local, CAL_DAY_MS), ms = local - day * CAL_DAY_MS;
    int y, m, d, off = cal->offset_min < 0 ? -cal->offset_min : cal->offset_min;
    cal_civil_from_days(day, &y, &m, &d);
    snprintf(out, out_size, "%04d-%02d-%02d %02d:%02d:%02d%c%02d:%02d", y, m, d,
             (int)(ms / 3600000), (int)(ms / 60000 % 60), (int)(ms / 1000 % 60),
             cal->offset_min < 0 ? '-' : '+', off / 60, off % 60);
}

int calendar_parse_local(const calendar_t *cal, const char *s, int64_t *out)
{
    char date[11];
    int h = 0, mi = 0, sec = 0, n = 0;
    int64_t day;
    if (!s || strlen(s) < 16 || (s[10] != ' ' && s[10] != 'T'))
        return -1;
    memcpy(date, s, 10);
    date[10] = '\0';
    if (cal_parse_date(date, &day, NULL) != 0)
        return -1;
    if (sscanf(s + 11, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5)
        return -1;
    if (s[16] == ':') {
        if (sscanf(s + 17, "%2d%n", &sec, &n) != 1 || n != 2 || s[19])
            return -1;
    } else if (s[16]) {
        return -1;
    }
    if (h > 23 || mi > 59 || sec > 59)
        return -1;
    *out = day * CAL_DAY_MS + ((int64_t)h * 3600 + mi * 60 + sec) * 1000 -
           (int64_t)cal->offset_min * 60000;
    return 0;
}

void calendar_fmt_work(const calendar_t *cal, int64_t work_ms, char *out, size_t out_size)
{
    const char *sign = work_ms < 0 ? "-" : "";
    int64_t v = work_ms < 0 ? -work_ms : work_ms;
    int64_t dms = cal->day_ms > 0 ? cal->day_ms : CAL_DAY_MS;
    int64_t days = v / dms, rest = v % dms;
    int64_t h = rest / 3600000, m = (rest / 60000) % 60;
    if (days)
        snprintf(out, out_size, "%s%lldd %lldh %lldm", sign, (long long)days, (long long)h,
                 (long long)m);
    else if (h)
        snprintf(out, out_size, "%s%lldh %lldm", sign, (long long)h, (long long)m);
    else
        snprintf(out, out_size, "%s%lldm", sign, (long long)m);
}
