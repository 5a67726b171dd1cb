/* manifest.h: reading Kubernetes manifests (YAML or JSON) into jansson
 * values, as `kubectl apply -f` would read them. Used by `wasmlet run -f`
 * and by static pods (--pod-manifest-path). */
#ifndef WASMLET_KUBE_MANIFEST_H
#define WASMLET_KUBE_MANIFEST_H

#include "util/err.h"

#include <jansson.h>
#include <stddef.h>

/* Parses text (JSON, or YAML with one or more documents separated by ---)
 * into a JSON array of the documents; empty documents are dropped. */
int manifest_parse(const char *text, size_t len, json_t **docs, err_t *err);
/* Same, for a file; errors name the file. */
int manifest_load_file(const char *path, json_t **docs, err_t *err);

#endif
