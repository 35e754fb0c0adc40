/* placeholder */
#include "parser.h"
enum tp_status parser_camt_run(struct input *in, struct parse_options *o,
                               const struct parse_sink *sink, struct tp_error *err)
{
    (void)in;
    (void)o;
    (void)err;
    sink_errorf(sink, 0, "not yet");
    return TP_INVALID;
}
