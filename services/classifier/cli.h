/*
 * cli: the offline commands of kesu-classifier — train, eval, cv, bench.
 *
 *   kesu-classifier train --data FILE.jsonl --out MODEL [--algo nb|lr|ap] [--seed N]
 *                         [--taxonomy FILE|none] [--unlabeled F1,F2,..|none] [--bits N]
 *   kesu-classifier eval [--model MODEL] FILE.jsonl
 *   kesu-classifier cv [--folds 5] [--algo nb|lr|ap|all] [--seed N] [--data FILE]
 *   kesu-classifier bench [--model MODEL] [--data FILE] [--seconds S]
 *
 * Every command prints a human-readable report and, as its last line, one
 * JSON object (accuracy, macro_f1, ... / classifier_per_s) for scripts.
 */
#ifndef KESU_CLI_H
#define KESU_CLI_H

#include <stdio.h>

#include "model.h"

/** @brief 1 if argv[1] names an offline command. */
int cli_is_command(int argc, char **argv);

/** @brief Run the offline command of argv[1]. @returns the exit code. */
int cli_main(int argc, char **argv);

/** Quality figures of a set of predictions. */
typedef struct cli_scores {
    double accuracy;
    double macro_f1;
    size_t n;
} cli_scores_t;

/**
 * @brief Score predictions against gold labels (strings, used as they
 *        are); print per-class precision/recall/F1 and the confusion matrix
 *        to out when out is not NULL.
 * @returns 0, or -1 if out of memory.
 */
int cli_score(const char *const *gold, const char *const *pred, size_t n, FILE *out,
              cli_scores_t *s);

#endif
