/*
 * model: the learned domain classifier — a linear model over hashed
 * character n-grams (textfeat.h), trained by one of three algorithms:
 *
 *   nb  multinomial naive Bayes (Laplace/Lidstone alpha), the default:
 *       with a few hundred labels it generalises best (see docs/classifier.md)
 *   lr  multinomial logistic regression by SGD
 *   ap  averaged perceptron
 *
 * All three end as the same thing, a weight per (bucket, class) plus a bias,
 * so prediction is one loop: score_c = bias_c + len_c * L + s(L) * sum of the
 * weights of the message's features (L = number of feature occurrences,
 * title ones counted title_weight times; len_c is NB's length term, s(L) is 1
 * for NB and 1/sqrt(L) for the others). Confidence is the softmax of the
 * scores at the model's temperature.
 *
 * Training data: labeled JSONL rows (title, body, label; labels are used as
 * they are), the government's category tree (level1 label, level2/level3
 * terms) as short extra documents, and unlabeled messages for
 * self-training: each round labels the unlabeled messages the current model
 * is sure of and trains again with them at a lower weight. Every random
 * choice comes from one seeded generator, so the same data, options and seed
 * give the same model file byte for byte.
 *
 * Model file (little-endian): "KESUCLF1", u32 format version, u32 algo,
 * u32 bits, u32 classes, u32 title_weight, f32 temperature, per class
 * (u16 length, label bytes, f32 bias, f32 len_c), u32 number of non-zero
 * buckets, then per bucket (u32 bucket, f32 weight per class), and a
 * SHA-256 of everything before it. Loading checks all of it.
 */
#ifndef KESU_MODEL_H
#define KESU_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_CLASSES 32
#define MODEL_MAX_LABEL   64
#define MODEL_FEATURE_CAP 8192 /**< features per message (a long letter stops there) */

typedef enum { MODEL_NB = 0, MODEL_LR = 1, MODEL_AP = 2 } model_algo_t;

/** A loaded or trained model; read-only once built, so threads may share it. */
typedef struct model {
    model_algo_t algo;     /**< how it was trained */
    unsigned bits;         /**< 2^bits buckets */
    unsigned nclasses;     /**< 2..MODEL_MAX_CLASSES */
    unsigned title_weight; /**< a title feature counts this many times (>= 1) */
    float temperature;     /**< softmax temperature of the confidence (> 0) */
    char labels[MODEL_MAX_CLASSES][MODEL_MAX_LABEL]; /**< class labels as in the data */
    float bias[MODEL_MAX_CLASSES];                   /**< per class */
    float len_coef[MODEL_MAX_CLASSES];               /**< NB: per feature occurrence; else 0 */
    float *w;         /**< owned: (1 << bits) * nclasses, bucket-major */
    char name[48];    /**< "nb-1a2b3c4d": algo and the start of the file's SHA-256 */
    const float *idf; /**< training only: per-bucket IDF (NULL once folded into w) */
} model_t;

/** One document as features: unique buckets with their (title-weighted) counts. */
typedef struct model_doc {
    uint32_t *ids; /**< owned, sorted, unique */
    float *val;    /**< owned: count of each id */
    uint32_t n;    /**< entries */
    float len;     /**< sum of val (L) */
    int label;     /**< class index, or -1 (unlabeled / label unknown to the model) */
    float weight;  /**< sample weight */
} model_doc_t;

/** A set of documents and the label names their indices refer to. */
typedef struct model_data {
    model_doc_t *docs;               /**< owned */
    size_t n, cap;                   /**< used / allocated */
    char (*labels)[MODEL_MAX_LABEL]; /**< owned: label names, index = class */
    unsigned nlabels;                /**< entries of labels */
    char **gold; /**< owned: each doc's label text as read ("" if none), for eval */
} model_data_t;

/** Training options; model_train_opts_default fills the shipped values. */
typedef struct model_train_opts {
    model_algo_t algo;
    unsigned bits;
    uint64_t seed;
    unsigned title_weight;
    double alpha;          /**< NB smoothing */
    int epochs;            /**< LR / AP passes */
    double lr;             /**< LR learning rate */
    double l2;             /**< LR L2 penalty */
    double tax_weight;     /**< weight of a taxonomy document */
    int self_rounds;       /**< self-training rounds (0: off) */
    double self_threshold; /**< confidence an unlabeled message needs to be used */
    double self_weight;    /**< weight of a self-labeled message */
    int idf;               /**< weight features by IDF over all training messages */
} model_train_opts_t;

/** @brief The shipped training options (nb, 2^18 buckets, seed 12345, ...). */
void model_train_opts_default(model_train_opts_t *o);

/** @brief Parse "nb" / "lr" / "ap". @returns the algo or -1. */
int model_algo_parse(const char *s);

/** @brief "nb" / "lr" / "ap". */
const char *model_algo_name(model_algo_t a);

/** @brief Empty data set (labels: none yet). */
void model_data_init(model_data_t *d);
void model_data_free(model_data_t *d);

/**
 * @brief Read JSONL rows into d. kind "labeled": title, body, label (a new
 *        label becomes a new class); "unlabeled": title and body, label
 *        ignored; "taxonomy": level1 is the label (only labels d already
 *        has), level2 and level3 the text. Blank lines are skipped.
 * @returns documents added, or -1 with errstr (file, line).
 */
long model_data_load(model_data_t *d, const char *path, const char *kind, unsigned bits,
                     unsigned title_weight, float weight, char *errstr, size_t errstr_size);

/** @brief Index of a label in d, or -1. */
int model_data_label(const model_data_t *d, const char *label);

/**
 * @brief Train on lab (only the docs listed in idx, all if idx is NULL),
 *        plus tax (may be NULL) and self-training on unl (may be NULL).
 *        Classes are lab's labels.
 * @returns the model or NULL with errstr.
 */
model_t *model_train(const model_data_t *lab, const size_t *idx, size_t nidx,
                     const model_data_t *tax, const model_data_t *unl, const model_train_opts_t *o,
                     char *errstr, size_t errstr_size);

/**
 * @brief Classify a message. buf (cap entries, e.g. MODEL_FEATURE_CAP) is the
 *        caller's scratch space so nothing is allocated. probs (nclasses
 *        entries, may be NULL) receives the confidences.
 * @returns the best class index; *confidence its probability.
 */
int model_predict(const model_t *m, const char *title, const char *body, uint32_t *buf, size_t cap,
                  float *probs, float *confidence);

/** @brief Classify a prepared document (same bucket count as the model). */
int model_predict_doc(const model_t *m, const model_doc_t *d, float *probs, float *confidence);

/** @brief Write the model file. @returns 0 or -1 with errstr. */
int model_save(model_t *m, const char *path, char *errstr, size_t errstr_size);

/** @brief Load and check a model file. @returns the model or NULL with errstr. */
model_t *model_load(const char *path, char *errstr, size_t errstr_size);

/** @brief Free (NULL is fine). */
void model_free(model_t *m);

/** @brief Fisher–Yates shuffle from the training's seeded generator (*rng != 0). */
void model_shuffle(size_t *order, size_t n, uint64_t *rng);

#endif
