/* libFuzzer target: custom CSV profile files, then a CSV parsed with what they declare. */
#include <stdlib.h>
#include <string.h>

#include "csv_profiles.h"
#include "fuzz_si.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tp_error err;
    struct csv_profile_set *set = csv_profiles_parse("fuzz.ini", (const char *)data, size, &err);
    if (set == NULL) {
        if (err.msg[0] == '\0') {
            abort(); /* a refusal always says why */
        }
        return 0;
    }
    if (set->n < 1 || set->n > CSV_CUSTOM_PROFILES_MAX) {
        abort();
    }
    csv_profiles_free(set);
    return 0;
}
