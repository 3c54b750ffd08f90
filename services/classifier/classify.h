/*
 * classify: one message -> its classification (DESIGN.md section 1.2).
 *
 * One function, classify_text(), turns a masked title and body into the
 * domain (which decides routing), request type, issue category, urgency and
 * flags, with a confidence. Three parts, loaded and checked once (and again
 * on SIGHUP) so the hot path only scans text:
 *   - the trained model (model.h, model.bin) decides the domain; its class
 *     labels are mapped to domain codes through deploy/config/domains.json;
 *   - keyword rules (deploy/config/classifier/rules.json) decide request
 *     type and category, may lower the urgency, and place a message the
 *     model is unsure of when their keywords are clear (English messages);
 *   - alert rules (deploy/config/classifier/alerts.json, alert.h) set the
 *     emergency and sensitive flags and raise the urgency.
 * All keyword rules are matched in one Aho–Corasick pass (acmatch.h).
 */
#ifndef KESU_CLASSIFY_H
#define KESU_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "acmatch.h"
#include "alert.h"
#include "model.h"

#define CLASSIFY_MAX_FLAGS    8
#define CLASSIFY_MAX_KEYWORDS 8192
/** weight of the keyword rules' vote for a domain against the model's probabilities */
#ifndef CLASSIFY_RULES_WEIGHT
#define CLASSIFY_RULES_WEIGHT 1.0
#endif
#define CLASSIFY_DEFAULT_RULES   "deploy/config/classifier/rules.json"
#define CLASSIFY_DEFAULT_ALERTS  "deploy/config/classifier/alerts.json"
#define CLASSIFY_DEFAULT_DOMAINS "deploy/config/domains.json"
/* the shipped model is trained by the build into the build tree (CMakeLists.txt) */
#ifdef KESU_CLASSIFIER_MODEL
#define CLASSIFY_DEFAULT_MODEL KESU_CLASSIFIER_MODEL
#else
#define CLASSIFY_DEFAULT_MODEL "deploy/config/classifier/model.bin"
#endif

/** One keyword. */
typedef struct classify_kw {
    char *text;   /**< owned; ASCII keywords are stored lower-case */
    int weight;   /**< 1..100 */
    int ascii;    /**< 1: an "en" keyword, matched case-insensitively at the start of a word */
    uint32_t idx; /**< its id in the automaton: index into the per-message hit counts */
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
        categories; /**< service_quality, efficiency, facilities, staff_attitude, policy */
    classify_group_t urgency; /**< keyword levels the rules may set (low); def = normal */
    acmatch_t *ac;            /**< every keyword above, one automaton */
    size_t nkw;               /**< keywords in ac (ids 0..nkw-1) */
} classify_rules_t;

/** The whole classifier: read-only once loaded, replaced as a whole on reload. */
typedef struct classify {
    classify_rules_t *rules;             /**< owned */
    alert_rules_t *alerts;               /**< owned */
    model_t *model;                      /**< owned */
    int model_domain[MODEL_MAX_CLASSES]; /**< model class -> index into rules->domain_list */
    double review_threshold;             /**< confidence below it sets needs_review */
    char name[96];                       /**< "ap-1a2b3c4d+keywords-v1": CaseClassified.model */
} classify_t;

/** Where the four files are (resolved paths). */
typedef struct classify_paths {
    const char *model, *rules, *alerts, *domains;
} classify_paths_t;

/** What classify_text decided. Strings point into the rules (valid while they live). */
typedef struct classify_result {
    const char *domain;                    /**< a code of domains.json */
    const char *request_type;              /**< one of the six request types */
    const char *category;                  /**< one of the six categories */
    const char *urgency;                   /**< emergency, urgent, normal or low */
    const char *flags[CLASSIFY_MAX_FLAGS]; /**< flags set, in rules order */
    size_t nflags;                         /**< entries of flags */
    double confidence;                     /**< 0..1, confidence in the domain */
    int needs_review;          /**< confidence below the threshold, or no domain found */
    const char *domain_source; /**< "model", "rules" or "default" */
    double model_confidence;   /**< the model's own probability for its best class */
    int domain_score;          /**< keyword score of the rules' best domain (0 if none) */
    int runner_up_score;       /**< keyword score of the rules' second domain */
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
 * @brief Keyword part only: request type, category, urgency from the rules,
 *        and the rules' domain (domain_source "rules" or "default"); no flags.
 * @returns 0.
 */
int classify_rules_text(const classify_rules_t *r, const char *title, const char *body,
                        classify_result_t *out);

/**
 * @brief Load model, rules, alerts and domains, and check that every model
 *        label is a label of domains.json.
 * @returns the classifier or NULL with errstr naming the file.
 */
classify_t *classify_load(const classify_paths_t *p, double review_threshold, char *errstr,
                          size_t errstr_size);

/** @brief Free (NULL is fine). */
void classify_free(classify_t *c);

/**
 * @brief Classify one message (title and body may be NULL or empty). Uses a
 *        per-thread scratch buffer: allocates nothing.
 * @returns 0.
 */
int classify_text(const classify_t *c, const char *title, const char *body, classify_result_t *out);

/** @brief Domain code for a Chinese label of domains.json ("城乡建设"), or NULL. */
const char *classify_domain_code(const classify_rules_t *r, const char *label);

/** @brief 1 if result has the flag. */
int classify_has_flag(const classify_result_t *res, const char *flag);

#endif
