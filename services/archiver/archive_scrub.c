/*
 * archive_scrub: what an envelope may say on kesu.public.v1.
 *
 * The public feed is for outsiders, so the rule is an allow-list: a string
 * field of a payload survives only if it is listed below AND its value looks
 * like a code or an id (letters, digits and _ . , : / -, at most 64 bytes).
 * Everything else - titles, bodies, addresses, replies, comments, notes,
 * free-text reasons, error texts, and any string field added to the .proto
 * later - is cleared. The second condition catches prose that a producer
 * put into a field meant for a code (a reason typed by a person instead of
 * "satisfied"). Numbers and booleans stay, except the coordinates of a
 * location, which can point at a complainant's home; the district code
 * stays. The envelope's own fields (ids, type, case number, version, seq,
 * producer, trace id) are not free text and stay as they are.
 */
#include <stdlib.h>
#include <string.h>

#include "archive.h"

/* "Message.field" of the payload strings that may stay (when code-like) */
static const char *const archive_keep[] = {
    "Location.district_code",
    "CaseReceived.channel",
    "CaseReceived.language",
    "CaseClassified.domain",
    "CaseClassified.request_type",
    "CaseClassified.category",
    "CaseClassified.urgency",
    "CaseClassified.flags",
    "CaseClassified.model",
    "CaseAssigned.department",
    "CaseAssigned.handler",
    "CaseAssigned.co_departments",
    "CaseAssigned.rule",
    "CaseAccepted.department",
    "CaseAccepted.handler",
    "CaseReturned.department",
    "CaseResolved.measures",
    "CaseResolved.department",
    "ReplySent.channel",
    "CaseReopened.reason",
    "CaseMerged.into_case_no",
    "CaseClosed.reason",
    "SlaWarning.timer",
    "SlaBreached.timer",
    "CaseEscalated.to",
    "CaseEscalated.timer",
    "NotificationSent.channel",
    "NotificationSent.audience",
    "NotificationSent.template",
    "NotificationSent.trigger_event_id",
    "NotificationFailed.channel",
    "NotificationFailed.audience",
    "NotificationFailed.template",
    "NotificationFailed.trigger_event_id",
    "HotspotDetected.district_code",
    "HotspotDetected.domain",
    "CaseRejected.reason",
    "CaseWithdrawn.reason",
};

/* non-string fields that are cleared all the same */
static const char *const archive_clear[] = {
    "Location.lat",
    "Location.lon",
    "Location.has_coordinates",
};

#define ARCHIVE_CODE_MAX 64

static int archive_listed(const char *const *list, size_t n, const char *msg, const char *field)
{
    size_t ml = strlen(msg);
    for (size_t i = 0; i < n; i++)
        if (strncmp(list[i], msg, ml) == 0 && list[i][ml] == '.' &&
            strcmp(list[i] + ml + 1, field) == 0)
            return 1;
    return 0;
}

static int archive_is_code(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= ARCHIVE_CODE_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ',' || c == ':' || c == '/' || c == '-'))
            return 0;
    }
    return n > 0;
}

/* the size of a scalar field's value, for zeroing it */
static size_t archive_scalar_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 4;
    }
}

static int archive_scrub_message(ProtobufCMessage *m);

static int archive_scrub_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    char *base = (char *)m;
    const char *msg = m->descriptor->short_name;
    int cleared = 0;

    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = (size_t *)(base + f->quantifier_offset);
        void **arr = *(void ***)(base + f->offset);
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            int keep = archive_listed(archive_keep, sizeof(archive_keep) / sizeof(*archive_keep),
                                      msg, f->name);
            size_t j = 0;
            for (size_t k = 0; k < *n; k++) {
                if (keep && arr[k] && archive_is_code(arr[k])) {
                    arr[j++] = arr[k];
                } else {
                    free(arr[k]);
                    cleared++;
                }
            }
            *n = j;
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            for (size_t k = 0; k < *n; k++)
                if (arr[k])
                    cleared += archive_scrub_message(arr[k]);
        } else if (*n &&
                   (f->type == PROTOBUF_C_TYPE_BYTES ||
                    archive_listed(archive_clear, sizeof(archive_clear) / sizeof(*archive_clear),
                                   msg, f->name))) {
            /* bytes are never public; listed numbers go entirely */
            if (f->type == PROTOBUF_C_TYPE_BYTES)
                for (size_t k = 0; k < *n; k++)
                    free(((ProtobufCBinaryData *)(void *)arr)[k].data);
            cleared += (int)*n;
            *n = 0;
        }
        return cleared;
    }

    void *p = base + f->offset;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **sp = p;
        if (!*sp || !**sp)
            return 0;
        if (archive_listed(archive_keep, sizeof(archive_keep) / sizeof(*archive_keep), msg,
                           f->name) &&
            archive_is_code(*sp))
            return 0;
        if (*sp != (const char *)f->default_value)
            free(*sp);
        /* the descriptor's default ("" in proto3) is what free_unpacked leaves alone */
        *sp = f->default_value ? (char *)f->default_value : NULL;
        return 1;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (!b->len)
            return 0;
        if (!def || b->data != def->data)
            free(b->data);
        b->data = NULL;
        b->len = 0;
        return 1;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *sub = *(ProtobufCMessage **)p;
        return sub ? archive_scrub_message(sub) : 0;
    }
    default: {
        static const char zero[16];
        size_t sz = archive_scalar_size(f->type);
        if (!archive_listed(archive_clear, sizeof(archive_clear) / sizeof(*archive_clear), msg,
                            f->name))
            return 0;
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
            !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 0;
        if (memcmp(p, zero, sz) == 0)
            return 0;
        memset(p, 0, sz);
        return 1;
    }
    }
}

static int archive_scrub_message(ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    int cleared = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)((const char *)m + f->quantifier_offset);
            if (which != f->id)
                continue;
        }
        cleared += archive_scrub_field(m, f);
    }
    return cleared;
}

int archive_scrub_envelope(Kesu__V1__Envelope *env)
{
    ProtobufCMessage *payload = (ProtobufCMessage *)proto_env_payload(env);
    return payload ? archive_scrub_message(payload) : 0;
}
