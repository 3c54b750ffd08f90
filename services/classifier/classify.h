/*
 * classify: the keyword classifier (model "keywords-v1").
 *
 * One function, classify_text(), turns a masked title and body into the
 * classification of DESIGN.md section 1.2: domain (which decides routing),
 * request type, issue category, urgency and flags, with a confidence. The
 * rules come from a JSON file (deploy/config/classifier_rules.json) and the
 * domain codes from deploy/config/domains.json; both are loaded and checked
 * once at start, so the hot path only scans text. A trained model replaces
 * this later behind the same function.
 */
#ifndef KESU_CLASSIFY_H
#define KESU_CLASSIFY_H

#include <stddef.h>

#define CLASSIFY_MAX_FLAGS 8

/** One keyword. */
typedef struct classify_kw {
    char *text; /**< owned; ASCII keywords are stored lower-case */
    int weight; /**< 1..100 */
    int ascii;  /**< 1: an "en" keyword, matched case-insensitively at the start of a word */
} classify_kw_t;

/** A class (a domain, a request type, a flag, ...) and the keywords that point to it. */
typedef struct classify_set {
    char *code;        /**< owned: domain code, request type, flag name, ... */
    classify_kw_t *kw; /**< owned array */
    size_t nkw;        /**< entries of kw */
    int min_score;     /**< the class counts only from this score on (>= 1) */
    char *implies;     /**< owned, may be NULL: urgency this flag / request type implies */
} classify_set_t;

/** One decision: its classes in file order (ties go to the earlier one) and a default. */
typedef struct classify_group {
    classify_set_t *sets; /**< owned array */
    size_t nsets;         /**< entries of sets */
    char *def;            /**< owned: the answer when no class reaches its min_score */
} classify_group_t;

/** A domain of domains.json. */
typedef struct classify_domain {
    char *code;  /**< owned: "urban_construction" */
    char *label; /**< owned: "城乡建设" */
} classify_domain_t;

/** The loaded rules; read-only after classify_rules_load, so threads may share them. */
typedef struct classify_rules {
    char model[32];                 /**< "keywords-v1", goes into CaseClassified.model */
    int title_weight;               /**< a hit in the title counts this many times (>= 1) */
    int max_hits;                   /**< occurrences of one keyword counted per field (>= 1) */
    int min_domain_score;           /**< below it the domain is the default ("other") */
    double review_threshold;        /**< confidence below it sets needs_review (0..1) */
    classify_domain_t *domain_list; /**< owned: domains.json in file order */
    size_t ndomains;                /**< entries of domain_list */
    classify_group_t domains;       /**< classes are domain codes */
    classify_group_t
        request_types; /**< consultation, help, complaint, report, suggestion, praise */
    classify_group_t
        categories;         /**< service_quality, efficiency, facilities, staff_attitude, policy */
    classify_group_t flags; /**< public_safety, self_harm, media, mass_incident, corruption */
    classify_group_t urgency; /**< keyword levels: emergency, urgent, low; def = normal */
} classify_rules_t;

/** What classify_text decided. Strings point into the rules (valid while they live). */
typedef struct classify_result {
    const char *domain;                    /**< a code of domains.json */
    const char *request_type;              /**< one of the six request types */
    const char *category;                  /**< one of the six categories */
    const char *urgency;                   /**< emergency, urgent, normal or low */
    const char *flags[CLASSIFY_MAX_FLAGS]; /**< flags set, in rules order */
    size_t nflags;                         /**< entries of flags */
    double confidence;                     /**< 0..1, confidence in the domain */
    int needs_review;    /**< confidence below the threshold, or no domain found */
    int domain_score;    /**< score of the chosen domain (0 when defaulted) */
    int runner_up_score; /**< score of the best other domain */
} classify_result_t;

/**
 * @brief Load and check the rules and the domain list. Errors name the file
 *        and the line (syntax) or the JSON path (content).
 * @returns the rules (free with classify_rules_free) or NULL with errstr.
 */
classify_rules_t *classify_rules_load(const char *rules_path, const char *domains_path,
                                      char *errstr, size_t errstr_size);

/** @brief Free rules (NULL is fine). */
void classify_rules_free(classify_rules_t *r);

/**
 * @brief Classify one message (title and body may be NULL or empty).
 * @returns 0, or -1 if memory ran out (out is then zeroed).
 */
int classify_text(const classify_rules_t *r, const char *title, const char *body,
                  classify_result_t *out);

/** @brief Domain code for a Chinese label of domains.json ("城乡建设"), or NULL. */
const char *classify_domain_code(const classify_rules_t *r, const char *label);

/** @brief 1 if result has the flag. */
int classify_has_flag(const classify_result_t *res, const char *flag);

#endif
