/* fuzz_pod_manifest.c: Kubernetes manifests in YAML or JSON
 * (kube/manifest.h), then every document that parses through the Pod checks
 * into C structs (kube/pod_spec.h), as `wasmlet run -f` and static pods do.
 * The input is the manifest text. */
#include "harness.h"
#include "kube/manifest.h"
#include "kube/pod_spec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *docs = NULL;
    err_t err;
    if (manifest_parse((const char *)data, size, &docs, &err) != 0) {
        if (docs) abort(); /* a failed parse hands back nothing */
        if (!err.msg[0]) abort();
        return 0;
    }
    if (!json_is_array(docs)) abort();
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        podspec_t *spec = NULL;
        if (podspec_parse(doc, &spec, &err) != 0) {
            if (spec) abort();
            continue;
        }
        /* Touch what the workers read, so a dangling pointer shows. */
        size_t sum = strlen(spec->name) + strlen(spec->namespace);
        for (size_t c = 0; c < spec->ncontainers; c++) {
            const podspec_container_t *ct = &spec->containers[c];
            sum += strlen(ct->name) + (ct->image ? strlen(ct->image) : 0);
            for (size_t a = 0; a < ct->nargs; a++)
                sum += strlen(ct->args[a]);
            /* podspec_parse refuses a mount of a volume that is not there. */
            for (size_t m = 0; m < ct->nmounts; m++)
                if (!podspec_volume(spec, ct->mounts[m].name)) abort();
        }
        (void)podspec_restart_name(spec->restart_policy);
        if (sum == (size_t)-1) abort();
        podspec_free(spec);
    }
    json_decref(docs);
    return 0;
}
