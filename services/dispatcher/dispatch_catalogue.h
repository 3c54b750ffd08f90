/*
 * dispatch_catalogue: the dispatch catalogue (deploy/config/catalogue.json)
 * and the routing decision made from it.
 *
 * The catalogue lists departments, their handlers (with skills = domain
 * codes and a capacity) and routing rules. A rule matches a case on domain,
 * category, district (each "*" for any) and, optionally, keywords (any one
 * found in the masked title or body, case-insensitive for ASCII).
 *
 * Precedence: the most specific matching rule wins, and among rules equally
 * specific the one earlier in the file. Specificity compares, in this order,
 * whether the rule names keywords, a district, a category and a domain, so
 * a keyword rule beats a district rule, which beats a category rule, which
 * beats a plain domain rule; the default rule (everything "*", no keywords)
 * is the least specific and is required. Emergencies (urgency "emergency"
 * or flag public_safety) skip the rules' lead department: they go to the
 * emergency desk, and the department the rules chose becomes a
 * co-handling department.
 *
 * Loading checks everything once at start (unknown departments, duplicate
 * ids, unknown domain codes, a missing default rule or emergency desk, ...)
 * with the JSON path of the mistake; the routing itself is pure and
 * allocation-free, so it is table-tested without a database.
 */
#ifndef KESU_DISPATCH_CATALOGUE_H
#define KESU_DISPATCH_CATALOGUE_H

#include <stddef.h>

#include "pg.h"

#define DISPATCH_MAX_CO         16
#define DISPATCH_RULE_EMERGENCY "emergency"

typedef struct dispatch_dept {
    char *code;         /**< owned, [a-z0-9_]+, unique */
    char *name;         /**< owned, e.g. 住房和城乡建设局 */
    char *parent;       /**< owned, NULL or the code of another department */
    char *head;         /**< owned, may be NULL: who escalations go to (a role, not a name) */
    char *on_duty;      /**< owned, may be NULL: who is on duty (a role) */
    int emergency_desk; /**< 1 for the one emergency desk */
    int supervision;    /**< 1 for the supervision office (督办) that decides repeated returns */
    char *webhook_url;  /**< owned, may be NULL: kept as stored when absent */
} dispatch_dept_t;

typedef struct dispatch_handler {
    char *id;         /**< owned, [A-Za-z0-9_.-]+, unique */
    char *department; /**< owned, a department code */
    char *name;       /**< owned, display name */
    char **skills;    /**< owned, domain codes or "*" (any) */
    size_t nskills;   /**< entries of skills */
    int capacity;     /**< open cases it may hold, >= 1 */
} dispatch_handler_t;

typedef struct dispatch_rule {
    char *id;         /**< owned, unique */
    char *domain;     /**< owned, a domain code or "*" */
    char *category;   /**< owned, a category or "*" */
    char *district;   /**< owned, a district code or "*" */
    char **keywords;  /**< owned, lower-case for ASCII; none = no keyword condition */
    size_t nkeywords; /**< entries of keywords */
    char *department; /**< owned, lead department code */
    char **co;        /**< owned, co-handling department codes (not the lead, no repeats) */
    size_t nco;       /**< entries of co, < DISPATCH_MAX_CO */
    int specificity;  /**< keywords 8 + district 4 + category 2 + domain 1 */
    size_t index;     /**< position in the file (rules[index]) */
} dispatch_rule_t;

typedef struct dispatch_catalogue {
    dispatch_dept_t *depts; /**< owned, file order */
    size_t ndepts;
    dispatch_handler_t *handlers; /**< owned, file order */
    size_t nhandlers;
    dispatch_rule_t *rules; /**< owned, sorted by precedence (most specific first) */
    size_t nrules;
    const dispatch_dept_t *emergency_desk; /**< points into depts; never NULL once loaded */
    const dispatch_dept_t *supervision;    /**< points into depts; NULL: the default rule's department */
} dispatch_catalogue_t;

/** What a case brings to routing (all borrowed; strings may be NULL or ""). */
typedef struct dispatch_input {
    const char *domain;
    const char *category;
    const char *urgency;
    const char *const *flags;
    size_t nflags;
    const char *district;
    const char *title; /**< masked */
    const char *body;  /**< masked */
} dispatch_input_t;

/** The decision. Strings point into the catalogue. */
typedef struct dispatch_route {
    const dispatch_rule_t *rule;     /**< the rule that matched (the default at worst) */
    const char *rule_id;             /**< rule->id, or "emergency" for the emergency desk */
    const char *department;          /**< lead department (主办) */
    const char *co[DISPATCH_MAX_CO]; /**< co-handling departments (协办) */
    size_t nco;                      /**< entries of co */
    int emergency;                   /**< routed to the emergency desk */
} dispatch_route_t;

/**
 * @brief Load and check a catalogue file. domain_codes (NULL-terminated, may
 *        be NULL to skip the check) are the codes rules and skills may use.
 * @returns the catalogue (free with dispatch_catalogue_free) or NULL with
 *          errstr naming the file and the line (syntax) or JSON path.
 */
dispatch_catalogue_t *dispatch_catalogue_load(const char *path, const char *const *domain_codes,
                                              char *errstr, size_t errstr_size);

/** @brief Same from text; name stands for the file in messages. */
dispatch_catalogue_t *dispatch_catalogue_parse(const char *text, const char *name,
                                               const char *const *domain_codes, char *errstr,
                                               size_t errstr_size);

/** @brief Free (NULL is fine). */
void dispatch_catalogue_free(dispatch_catalogue_t *cat);

/**
 * @brief Read the domain codes of domains.json.
 * @returns a NULL-terminated array (free with dispatch_codes_free) or NULL with errstr.
 */
char **dispatch_domains_load(const char *path, char *errstr, size_t errstr_size);
void dispatch_codes_free(char **codes);

/** @brief A department by code, or NULL. */
const dispatch_dept_t *dispatch_dept_find(const dispatch_catalogue_t *cat, const char *code);

/** @brief The first rule in precedence order that matches, or NULL (impossible once loaded). */
const dispatch_rule_t *dispatch_match(const dispatch_catalogue_t *cat, const dispatch_input_t *in);

/** @brief 1 if the input is an emergency: urgency emergency or flag public_safety. */
int dispatch_is_emergency(const dispatch_input_t *in);

/** @brief Decide lead and co-handling departments. @returns 0, or -1 if nothing matched. */
int dispatch_route(const dispatch_catalogue_t *cat, const dispatch_input_t *in,
                   dispatch_route_t *out);

/**
 * @brief Write departments and handlers into PostgreSQL in one transaction:
 *        upsert every department and handler (a handler's open_load is never
 *        touched), deactivate handlers no longer in the catalogue and clear
 *        the emergency_desk mark of departments that lost it.
 * @returns 0 or -1 with errstr (rolled back).
 */
int dispatch_catalogue_sync(pg_t *pg, const dispatch_catalogue_t *cat, char *errstr,
                            size_t errstr_size);

/** @brief dispatch_catalogue_sync without its own transaction (the caller's is used). @returns 0 or -1. */
int dispatch_catalogue_write(pg_t *pg, const dispatch_catalogue_t *cat, char *errstr,
                             size_t errstr_size);

/**
 * @brief The line in a JSON text where the value at path starts, for error
 *        messages: path is what the loader's errors name after "FILE: "
 *        ("rules[12].department", "departments[3]"); the longest prefix that
 *        can be found counts.
 * @returns the 1-based line, or 0 if not even the first key is found.
 */
int dispatch_json_line(const char *text, const char *path);

/**
 * @brief A PostgreSQL array literal of codes ("{\"a\",\"b\"}") into out.
 *        The codes were checked at load to need no escaping.
 * @returns 0, or -1 if out is too small.
 */
int dispatch_array_literal(const char *const *codes, size_t n, char *out, size_t out_size);

#endif
