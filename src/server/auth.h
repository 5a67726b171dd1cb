/* auth.h: who is asking the kubelet API, and may they: a bearer token
 * checked with a TokenReview, access checked with a SubjectAccessReview,
 * both cached (auth.c). Internal to server/; routes.c is its user. */
#ifndef WASMLET_SERVER_AUTH_H
#define WASMLET_SERVER_AUTH_H

#include "kube/client.h"
#include "util/err.h"
#include "util/strvec.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct server_user {
    char *name;
    char *uid; /* "" when unknown */
    strvec_t groups;
    json_t *extra; /* object of string -> [string], or NULL */
} server_user_t;

void server_user_free(server_user_t *u);

typedef struct server_auth server_auth_t;

/* Reviews go through client (NULL, tests only: bearer tokens are refused
 * and every authenticated user is allowed) and ask about nodes/<node_name>.
 * Cache lifetimes in ms; 0 takes the default (2 min for token results,
 * 60 s for allowed reviews, 10 s for denied ones). */
server_auth_t *server_auth_new(kube_client_t *client, const char *node_name, int64_t authn_ttl_ms,
                               int64_t allow_ttl_ms, int64_t deny_ttl_ms);
void server_auth_free(server_auth_t *a);

/* Outcome of a check: yes, no, or could not tell (the API server failed). */
typedef enum server_verdict { SERVER_NO = 0, SERVER_YES = 1, SERVER_UNKNOWN = -1 } server_verdict_t;

/* Checks a bearer token with a TokenReview (cached by the token's hash);
 * YES fills user. */
server_verdict_t server_authn_token(server_auth_t *a, const char *token, server_user_t *user,
                                    err_t *err);
/* Checks with a SubjectAccessReview whether user may do verb on
 * nodes/<node>/<subresource> (cached). NO fills reason when the API server
 * gave one. */
server_verdict_t server_authz(server_auth_t *a, const server_user_t *user, const char *verb,
                              const char *subresource, char *reason, size_t reason_len, err_t *err);

/* The subresources a path is authorized against, in order of preference
 * (allowed when any is allowed); returns how many (1 or 2). */
size_t server_path_subresources(const char *path, const char *out[2]);
/* The verb of an HTTP method: get, create, update, patch, delete. */
const char *server_method_verb(const char *method);

#endif
