/* fuzz_quantity.c: Kubernetes resource quantities (kube/quantity.h), as a
 * Pod's resources and a resourceFieldRef's divisor write them. The input is
 * the text; both entry points must agree on what is a quantity. */
#include "harness.h"
#include "kube/quantity.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    char *text = fuzz_rest(&in, NULL);
    int64_t milli = 0, value = 0;
    int rm = quantity_parse_milli(text, &milli);
    int rv = quantity_parse(text, &value);
    /* Whole units overflow no sooner than thousandths of them. */
    if (rm == 0 && rv != 0) abort();
    if (rm == 0 && rv == 0) {
        /* value is milli / 1000 rounded up. */
        int64_t want = milli / 1000 + (milli % 1000 > 0 ? 1 : 0);
        if (value != want) abort();
    }
    free(text);
    return 0;
}
