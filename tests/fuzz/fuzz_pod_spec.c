/* fuzz_pod_spec.c: a Pod as the API server sends it (JSON, as the watch
 * delivers it) through everything the node reads of it before a module
 * runs: the Pod checks into C structs (kube/pod_spec.h), admission's
 * requests and verdict (pod/admission.h) and eviction's figures: priority,
 * requests, ephemeral-storage limits (pod/eviction.h). The input is the
 * JSON text. */
#include "harness.h"
#include "kube/pod_spec.h"
#include "pod/admission.h"
#include "pod/eviction.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *pod = json_loadb((const char *)data, size, 0, NULL);
    if (!pod) return 0;
    podspec_t *spec = NULL;
    err_t err;
    if (podspec_parse(pod, &spec, &err) == 0) {
        for (size_t c = 0; c < spec->ncontainers; c++) {
            const podspec_container_t *ct = &spec->containers[c];
            if (!ct->name || ct->memory_limit < 0 || ct->cpu_limit < 0) abort();
            for (size_t m = 0; m < ct->nmounts; m++)
                if (!podspec_volume(spec, ct->mounts[m].name)) abort();
        }
        podspec_free(spec);
    } else if (spec || !err.msg[0]) {
        abort();
    }

    int64_t cpu = -1, mem = -1;
    pod_admission_requests(pod, &cpu, &mem);
    if (cpu < 0 || mem < 0) abort();
    json_t *labels = json_pack("{s:s}", "kubernetes.io/arch", "wasm32-wasi");
    pod_admission_node_t node = {.name = "wasm-1",
                                 .labels = labels,
                                 .allocatable_cpu = 2000,
                                 .allocatable_memory = INT64_C(1) << 33,
                                 .max_pods = 110};
    pod_admission_t verdict;
    pod_admit(pod, &node, &verdict);
    if (!verdict.admit && !verdict.reason[0]) abort();
    json_decref(labels);

    bool critical;
    (void)eviction_pod_priority(pod, &critical);
    eviction_candidate_t c;
    eviction_pod_requests(pod, "memory", &c);
    if (c.ncontainers > EVICTION_MAX_CONTAINERS || c.request < 0) abort();
    eviction_pod_requests(pod, "ephemeral-storage", &c);
    if (c.request < 0) abort();
    if (eviction_pod_storage_limit(pod) < 0) abort();
    char msg[1024];
    eviction_verdict_t v = {.evict = true, .signal = EVICT_MEMORY_AVAILABLE, .available = 1};
    memcpy(v.threshold_text, "100Mi", 6);
    eviction_message(&v, &c, msg, sizeof msg);
    if (strncmp(msg, "The node was low on resource: ", 30) != 0) abort();
    json_decref(pod);
    return 0;
}
