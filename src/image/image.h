/* image.h: WebAssembly modules from OCI registries, kept in one content store
 * that every pod of the node shares.
 *
 * A container's image is an OCI reference ("registry:5000/app:v1",
 * "ghcr.io/org/app@sha256:...", "hello" = docker.io/library/hello:latest).
 * image_pull() resolves it through the Distribution API v2, picks the
 * wasm32/WASI entry of an index, and finds the module in one of the three
 * layouts in use:
 *   - the CNCF wasm artifact (config application/vnd.wasm.config.v0+json,
 *     one layer application/wasm),
 *   - wasm-to-oci (layer application/vnd.wasm.content.layer.v1+wasm),
 *   - an ordinary OCI/Docker image whose Entrypoint (or Cmd) names a .wasm
 *     file inside its tar layers.
 * Every byte is checked against its digest while it downloads; the store
 * keeps only the module itself, named by the SHA-256 of its bytes:
 *   <dir>/blobs/sha256/<hex>        the .wasm (written via temp file + rename)
 *   <dir>/compiled/<hex>.cwasm      compiled form, kept by wasm/ beside it
 *   <dir>/index.json                reference -> manifest digest -> module
 *   <dir>/tmp/                      downloads in progress (emptied at open)
 *
 * Errors carry the registry's own words ("manifest unknown", "authentication
 * required", "dial 127.0.0.1:5999: connection refused", a digest mismatch
 * naming both digests); pod/ reports them as ErrImagePull. Two failures
 * are not the registry's and have their own kubelet reasons
 * (image_pulled_t.failure): a reference that does not parse
 * (InvalidImageName) and an image absent with pull policy Never
 * (ErrImageNeverPull).
 *
 * Thread safety: an image_store_t may be used from any number of threads.
 * Concurrent pulls of one reference share a single download. */
#ifndef WASMLET_IMAGE_IMAGE_H
#define WASMLET_IMAGE_IMAGE_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "sha256:" + 64 hex digits + NUL */
#define IMAGE_DIGEST_MAX 72

/* --- references ------------------------------------------------------- */

/* A parsed, normalized reference, as Kubernetes and docker read them:
 * [registry[:port]/]repository[:tag][@sha256:hex]. */
typedef struct image_ref {
    char *registry;   /* "docker.io", "127.0.0.1:5000", "ghcr.io" */
    char *repository; /* "library/hello", "org/app" */
    char *tag;        /* "latest" when neither tag nor digest is given; NULL with only a digest */
    char *digest;     /* "sha256:<hex>" or NULL */
} image_ref_t;

int image_ref_parse(const char *text, image_ref_t *ref, err_t *err);
void image_ref_free(image_ref_t *ref);
/* The normalized text: "docker.io/library/hello:latest", "host/app@sha256:..."
 * (a digest, when present, names the image and the tag is dropped). */
char *image_ref_string(const image_ref_t *ref);
/* The host:port to talk to: docker.io is served by registry-1.docker.io. */
const char *image_ref_endpoint(const image_ref_t *ref);

typedef enum image_pull_policy {
    IMAGE_PULL_IF_NOT_PRESENT = 0,
    IMAGE_PULL_ALWAYS,
    IMAGE_PULL_NEVER,
} image_pull_policy_t;

/* "Always", "IfNotPresent", "Never"; -1 for anything else. */
int image_pull_policy_parse(const char *text, image_pull_policy_t *policy);
/* Kubernetes' default: Always for :latest or no tag, IfNotPresent otherwise
 * (and for any reference with a digest). */
image_pull_policy_t image_default_pull_policy(const image_ref_t *ref);

/* --- credentials -------------------------------------------------------- */

typedef struct image_cred {
    char *registry;       /* key as normalized: host[:port][/path], may hold '*' labels */
    char *username;       /* NULL when the entry has none */
    char *password;       /* NULL when the entry has none */
    char *identity_token; /* OAuth2 refresh token for Bearer realms, or NULL */
    char *registry_token; /* a bearer token to send as is, or NULL */
} image_cred_t;

typedef struct image_auth {
    image_cred_t *creds;
    size_t n;
} image_auth_t;

#define IMAGE_AUTH_INIT                                                                            \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

/* Adds the entries of a docker config to auth: the `.dockerconfigjson`
 * format ({"auths": {"host": {...}}}) or the older `.dockercfg` one (the
 * same map at the top level). Each entry gives username+password, or
 * auth (base64 "user:pass"), and/or identitytoken / registrytoken. */
int image_auth_from_dockerconfigjson(image_auth_t *auth, const char *json, size_t len, err_t *err);
/* Same, from a file (the node-level credentials). */
int image_auth_load_file(image_auth_t *auth, const char *path, err_t *err);
/* Appends a copy of every entry of src to dst. */
void image_auth_append(image_auth_t *dst, const image_auth_t *src);
void image_auth_free(image_auth_t *auth);
/* The credentials that apply to registry/repository, most specific first,
 * as the kubelet's keyring matches them (host globs, port, path prefix;
 * docker.io and index.docker.io are one). Fills up to max pointers into
 * auth and returns how many matched. */
size_t image_auth_match(const image_auth_t *auth, const char *registry, const char *repository,
                        const image_cred_t **out, size_t max);

/* --- the store ---------------------------------------------------------- */

typedef struct image_store image_store_t;

typedef struct image_store_options {
    const char *dir; /* created if missing */
    /* Registries ("host" or "host:port") reached over plain HTTP. Loopback
     * registries (localhost, 127.0.0.0/8, ::1) always are. NULL-terminated. */
    const char *const *insecure_registries;
    const char *ca_file;           /* extra CA bundle for HTTPS registries, or NULL */
    const image_auth_t *node_auth; /* node-level credentials (copied), or NULL */
} image_store_options_t;

int image_store_open(image_store_t **store, const image_store_options_t *opts, err_t *err);
void image_store_close(image_store_t *store);
const char *image_store_dir(const image_store_t *store);

/* Where the compiled form of a module lives; the caller frees. GC removes it
 * together with its module. */
char *image_store_compiled_path(const image_store_t *store, const char *module_digest);

typedef enum image_format {
    IMAGE_FORMAT_WASM_ARTIFACT = 0, /* CNCF TAG Runtime wasm OCI artifact */
    IMAGE_FORMAT_WASM_TO_OCI,       /* application/vnd.wasm.content.layer.v1+wasm */
    IMAGE_FORMAT_OCI_IMAGE,         /* tar layers, Entrypoint names the .wasm */
} image_format_t;

/* "wasm", "wasm-artifact", "wasm-to-oci", "oci-image"; -1 otherwise. */
int image_format_parse(const char *text, image_format_t *format);
const char *image_format_name(image_format_t format);

/* Why image_pull failed. */
typedef enum image_pull_failure {
    IMAGE_PULL_FAILED = 0,       /* the registry, the network, the content: ErrImagePull */
    IMAGE_PULL_INVALID_NAME,     /* the reference does not parse: InvalidImageName */
    IMAGE_PULL_NEVER_NOT_PRESENT /* policy Never, not in the store: ErrImageNeverPull */
} image_pull_failure_t;

/* The kubelet's waiting reason for a failure. */
const char *image_pull_failure_reason(image_pull_failure_t f);

typedef struct image_pulled {
    char *ref;         /* normalized reference pulled */
    char *repo_digest; /* "registry/repository@sha256:..." (the container's imageID) */
    char image_id[IMAGE_DIGEST_MAX];      /* digest of the manifest (or index) */
    char module_digest[IMAGE_DIGEST_MAX]; /* digest of the .wasm bytes */
    char *module_path;                    /* the .wasm in the store */
    uint64_t module_size;
    image_format_t format;
    bool from_store;              /* true when no registry was asked */
    image_pull_failure_t failure; /* when image_pull failed */
} image_pulled_t;

void image_pulled_free(image_pulled_t *pulled);

/* The largest blob (a module, or a layer holding one) a pull downloads:
 * 256 MiB. A descriptor declaring more is refused before any byte is
 * fetched, and a registry sending more than a descriptor declares is cut
 * off at the declared size, so a hostile or broken registry cannot fill
 * the data dir. */
#define IMAGE_BLOB_MAX (INT64_C(256) << 20)

/* Whether image_pull(store, ref, policy) would answer from the store alone,
 * without asking a registry (the kubelet's "already present on machine").
 * A guess for the Events: the store may change before the pull. */
bool image_present(image_store_t *store, const char *ref, image_pull_policy_t policy);

/* Makes the module of ref present in the store, as policy says: Never uses
 * only the store; IfNotPresent uses it when the reference is known; Always
 * asks the registry which manifest the reference names now (a HEAD when it
 * can) and downloads only what the store lacks. pod_auth holds the pod's
 * pull-secret credentials (tried before the node's); may be NULL. On
 * failure out->failure says why (and nothing else of out is set). */
int image_pull(image_store_t *store, const char *ref, image_pull_policy_t policy,
               const image_auth_t *pod_auth, image_pulled_t *out, err_t *err);

/* Removes every module that no running pod uses (in_use: module digests or
 * repo digests / references of running containers) and that has not been
 * pulled or looked up for grace_ns, with its compiled form and its
 * references. Reports what it removed. */
typedef struct image_gc_result {
    size_t modules_removed;
    uint64_t bytes_freed;
    size_t modules_kept;
} image_gc_result_t;

int image_store_gc(image_store_t *store, const char *const *in_use, size_t n_in_use,
                   int64_t grace_ns, image_gc_result_t *result, err_t *err);

/* Counters of network work done by a store (for tests and metrics). */
typedef struct image_store_stats {
    uint64_t manifest_requests; /* GETs and HEADs of manifests */
    uint64_t blob_downloads;    /* blob GETs */
    uint64_t bytes_downloaded;  /* blob bytes */
} image_store_stats_t;

void image_store_stats(image_store_t *store, image_store_stats_t *stats);

/* --- push ----------------------------------------------------------------- */

typedef struct image_push_options {
    image_format_t format;
    const char *const *insecure_registries; /* as in image_store_options_t */
    const char *ca_file;
} image_push_options_t;

/* Publishes the module at wasm_path as ref (a tag, or a digest that must
 * match) in the chosen format: blobs by monolithic upload (POST, then PUT
 * ?digest=), then the manifest. opts and auth may be NULL (CNCF artifact,
 * anonymous). manifest_digest (may be NULL) gets the manifest's digest. */
int image_push(const char *wasm_path, const char *ref, const image_push_options_t *opts,
               const image_auth_t *auth, char manifest_digest[IMAGE_DIGEST_MAX], err_t *err);

#endif
