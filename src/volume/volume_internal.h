/* volume_internal.h: what the files of volume/ share. */
#ifndef WASMLET_VOLUME_INTERNAL_H
#define WASMLET_VOLUME_INTERNAL_H

#include "volume/volume.h"

#include <jansson.h>

/* The files of a configMap, secret, downwardAPI or projected volume: an
 * object path -> {"data", "mode"}. *token_expires gets the earliest expiry
 * of a serviceAccountToken in it (unchanged when there is none). */
int volume_source_files(const volume_host_t *host, const podspec_t *pod, const podspec_volume_t *v,
                        json_t **files, int64_t *token_expires, err_t *err);
/* Writes files into the volume directory with the ..data swap; does
 * nothing when the content is what is there already. */
int volume_atomic_write(const char *vol, json_t *files, err_t *err);

#endif
