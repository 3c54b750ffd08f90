/*
 * archive_order: the one decision the public feed's ordering rests on.
 *
 * next_seq is the next history position of the case still to be published
 * (public_feed_state). Everything below it is out already, so a repeat is
 * dropped; the one at it goes out now; anything above it waits in
 * public_feed_pending until the positions before it have gone out.
 */
#include "archive.h"

archive_order_t archive_order_decide(int64_t seq, int64_t next_seq)
{
    if (seq < 1)
        return ARCHIVE_ORDER_INVALID;
    if (seq < next_seq)
        return ARCHIVE_ORDER_SKIP;
    if (seq == next_seq)
        return ARCHIVE_ORDER_PUBLISH;
    return ARCHIVE_ORDER_HOLD;
}
