/*
 * open311_services: the Open311 service list and service definitions,
 * derived from the dispatch catalogue (deploy/config/catalogue.json) and
 * the domain list (deploy/config/domains.json) - the same files the
 * dispatcher routes by, so an Open311 client is offered exactly the
 * services the hotline dispatches.
 *
 * One service per catalogue rule: service_code = rule id, group = the
 * rule's domain label, keywords = the rule's keywords, description names
 * the lead (and co-handling) department. Every service has the same
 * attributes (title, district_code, external_ref, language, confidential,
 * anonymous), which open311.c maps onto the complaint fields of intake.
 * Built once; read-only afterwards, so every HTTP thread may share it.
 */
#ifndef KESU_INTAKE_OPEN311_SERVICES_H
#define KESU_INTAKE_OPEN311_SERVICES_H

#include <jansson.h>
#include <stddef.h>

typedef struct open311_catalogue {
    json_t *services;    /**< array of service objects, as GET services answers */
    json_t *definitions; /**< object: service_code -> service definition object */
    json_t *names;       /**< object: service_code -> service_name */
    json_t *departments; /**< object: department code -> department name */
} open311_catalogue_t;

/**
 * @brief Build the catalogue from the two JSON files (paths as given;
 *        resolve them with config_resolve_path first).
 * @returns the catalogue (free with open311_catalogue_free) or NULL with
 *          errstr naming the file and what is wrong.
 */
open311_catalogue_t *open311_catalogue_load(const char *catalogue_path, const char *domains_path,
                                            char *errstr, size_t errstr_size);

/** @brief Free a catalogue (NULL-safe). @returns nothing. */
void open311_catalogue_free(open311_catalogue_t *cat);

/** @brief The service definition of code, or NULL. @returns a borrowed reference. */
json_t *open311_catalogue_definition(const open311_catalogue_t *cat, const char *code);

/** @brief The service name of code, or NULL if the code is unknown. @returns a borrowed string. */
const char *open311_catalogue_name(const open311_catalogue_t *cat, const char *code);

/** @brief The name of a department code, or NULL. @returns a borrowed string. */
const char *open311_catalogue_department(const open311_catalogue_t *cat, const char *code);

/**
 * @brief The process-wide catalogue, loaded on first use from
 *        KESU_OPEN311_CATALOGUE / KESU_OPEN311_DOMAINS (defaults
 *        deploy/config/catalogue.json and deploy/config/domains.json,
 *        resolved with config_resolve_path). Thread-safe; a failed load is
 *        logged once and answered as NULL every time after.
 * @returns the catalogue, or NULL.
 */
const open311_catalogue_t *open311_catalogue_get(void);

#endif
