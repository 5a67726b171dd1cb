/* curl_dl.c: libcurl, loaded when first used.
 *
 * wasmlet talks HTTP(S) through libcurl only when it reaches an API server
 * or a registry, or probes a pod (`wasmlet node`, `wasmlet push`, probes).
 * Linked normally, libcurl and the ~27 libraries it needs (GnuTLS, Kerberos,
 * LDAP, SASL, libssh2, nghttp2, ...) are mapped, relocated and
 * initialised at every exec, which is most of the cost of starting a
 * `wasmlet run` process. So wasmlet does not link libcurl: this file
 * defines the libcurl functions wasmlet calls, each of which loads
 * libcurl.so.4 (dlopen, once per process, thread-safe) and forwards to the
 * real one. The rest of the code includes <curl/curl.h> and calls libcurl
 * as usual. libcurl.so.4 is the ABI soname libcurl has kept since 7.16.
 *
 * A process that cannot load libcurl stops with a message saying so, as it
 * would have at exec had it been linked.
 *
 * The variadic setters forward their one argument by the option's type,
 * which libcurl encodes in the option number (CURLOPTTYPE_*: long, object
 * pointer, function pointer, curl_off_t, blob pointer); the share options
 * take an int (what to share) or a pointer (callbacks, user data); the
 * multi options are encoded as the easy ones. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define LIBCURL_SONAME "libcurl.so.4"

typedef void (*fnptr_t)(void);

static struct {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_reset)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    char *(*easy_escape)(CURL *, const char *, int);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    void (*free)(void *);
    CURLSH *(*share_init)(void);
    CURLSHcode (*share_setopt)(CURLSH *, CURLSHoption, ...);
    CURLSHcode (*share_cleanup)(CURLSH *);
    CURLU *(*url)(void);
    void (*url_cleanup)(CURLU *);
    CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
    CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd[], unsigned int, int, int *);
    CURLMcode (*multi_wakeup)(CURLM *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_cleanup)(CURLM *);
} fn;

static pthread_once_t loaded = PTHREAD_ONCE_INIT;

static void sym(void *lib, void *slot, const char *name)
{
    /* POSIX's way to store a dlsym result in a function pointer. */
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "wasmlet: %s has no %s\n", LIBCURL_SONAME, name);
        abort();
    }
    *(void **)slot = p;
}

static void load(void)
{
    void *lib = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "wasmlet: cannot load %s (libcurl): %s\n", LIBCURL_SONAME, dlerror());
        abort();
    }
#define SYM(f) sym(lib, &fn.f, "curl_" #f)
    SYM(global_init);
    SYM(global_cleanup);
    SYM(easy_init);
    SYM(easy_setopt);
    SYM(easy_perform);
    SYM(easy_cleanup);
    SYM(easy_getinfo);
    SYM(easy_reset);
    SYM(easy_strerror);
    SYM(easy_escape);
    SYM(slist_append);
    SYM(slist_free_all);
    SYM(free);
    SYM(share_init);
    SYM(share_setopt);
    SYM(share_cleanup);
    SYM(url);
    SYM(url_cleanup);
    SYM(url_get);
    SYM(url_set);
    SYM(multi_init);
    SYM(multi_setopt);
    SYM(multi_add_handle);
    SYM(multi_remove_handle);
    SYM(multi_perform);
    SYM(multi_poll);
    SYM(multi_wakeup);
    SYM(multi_info_read);
    SYM(multi_cleanup);
#undef SYM
}

#define LOAD() pthread_once(&loaded, load)

CURLcode curl_global_init(long flags)
{
    LOAD();
    return fn.global_init(flags);
}

void curl_global_cleanup(void)
{
    LOAD();
    fn.global_cleanup();
}

CURL *curl_easy_init(void)
{
    LOAD();
    return fn.easy_init();
}

/* Forwards one variadic option by the type libcurl encodes in its number
 * (CURLOPTTYPE_*), which the easy and the multi options share. */
#define FORWARD_OPTION(rc, setter, handle, option, ap)                                             \
    do {                                                                                           \
        if ((option) < CURLOPTTYPE_OBJECTPOINT)                                                    \
            (rc) = (setter)((handle), (option), va_arg((ap), long));                               \
        else if ((option) < CURLOPTTYPE_FUNCTIONPOINT)                                             \
            (rc) = (setter)((handle), (option), va_arg((ap), void *));                             \
        else if ((option) < CURLOPTTYPE_OFF_T)                                                     \
            (rc) = (setter)((handle), (option), va_arg((ap), fnptr_t));                            \
        else if ((option) < CURLOPTTYPE_BLOB)                                                      \
            (rc) = (setter)((handle), (option), va_arg((ap), curl_off_t));                         \
        else                                                                                       \
            (rc) = (setter)((handle), (option), va_arg((ap), void *));                             \
    } while (0)

CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
    LOAD();
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    FORWARD_OPTION(rc, fn.easy_setopt, curl, option, ap);
    va_end(ap);
    return rc;
}

CURLcode curl_easy_perform(CURL *curl)
{
    LOAD();
    return fn.easy_perform(curl);
}

void curl_easy_cleanup(CURL *curl)
{
    LOAD();
    fn.easy_cleanup(curl);
}

CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
    LOAD();
    va_list ap;
    va_start(ap, info);
    void *out = va_arg(ap, void *); /* every CURLINFO takes one pointer */
    va_end(ap);
    return fn.easy_getinfo(curl, info, out);
}

void curl_easy_reset(CURL *curl)
{
    LOAD();
    fn.easy_reset(curl);
}

const char *curl_easy_strerror(CURLcode code)
{
    LOAD();
    return fn.easy_strerror(code);
}

char *curl_easy_escape(CURL *handle, const char *string, int length)
{
    LOAD();
    return fn.easy_escape(handle, string, length);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *data)
{
    LOAD();
    return fn.slist_append(list, data);
}

void curl_slist_free_all(struct curl_slist *list)
{
    LOAD();
    fn.slist_free_all(list);
}

void curl_free(void *p)
{
    LOAD();
    fn.free(p);
}

CURLSH *curl_share_init(void)
{
    LOAD();
    return fn.share_init();
}

CURLSHcode curl_share_setopt(CURLSH *share, CURLSHoption option, ...)
{
    LOAD();
    va_list ap;
    va_start(ap, option);
    CURLSHcode rc;
    if (option == CURLSHOPT_SHARE || option == CURLSHOPT_UNSHARE) {
        int v = va_arg(ap, int); /* a curl_lock_data */
        rc = fn.share_setopt(share, option, v);
    } else if (option == CURLSHOPT_LOCKFUNC || option == CURLSHOPT_UNLOCKFUNC) {
        fnptr_t v = va_arg(ap, fnptr_t);
        rc = fn.share_setopt(share, option, v);
    } else {
        void *v = va_arg(ap, void *);
        rc = fn.share_setopt(share, option, v);
    }
    va_end(ap);
    return rc;
}

CURLSHcode curl_share_cleanup(CURLSH *share)
{
    LOAD();
    return fn.share_cleanup(share);
}

CURLU *curl_url(void)
{
    LOAD();
    return fn.url();
}

void curl_url_cleanup(CURLU *handle)
{
    LOAD();
    fn.url_cleanup(handle);
}

CURLUcode curl_url_get(CURLU *handle, CURLUPart what, char **part, unsigned int flags)
{
    LOAD();
    return fn.url_get(handle, what, part, flags);
}

CURLUcode curl_url_set(CURLU *handle, CURLUPart what, const char *part, unsigned int flags)
{
    LOAD();
    return fn.url_set(handle, what, part, flags);
}

CURLM *curl_multi_init(void)
{
    LOAD();
    return fn.multi_init();
}

CURLMcode curl_multi_setopt(CURLM *multi, CURLMoption option, ...)
{
    LOAD();
    va_list ap;
    va_start(ap, option);
    CURLMcode rc;
    FORWARD_OPTION(rc, fn.multi_setopt, multi, option, ap);
    va_end(ap);
    return rc;
}

CURLMcode curl_multi_add_handle(CURLM *multi, CURL *easy)
{
    LOAD();
    return fn.multi_add_handle(multi, easy);
}

CURLMcode curl_multi_remove_handle(CURLM *multi, CURL *easy)
{
    LOAD();
    return fn.multi_remove_handle(multi, easy);
}

CURLMcode curl_multi_perform(CURLM *multi, int *running)
{
    LOAD();
    return fn.multi_perform(multi, running);
}

CURLMcode curl_multi_poll(CURLM *multi, struct curl_waitfd extra[], unsigned int n, int timeout_ms,
                          int *ret)
{
    LOAD();
    return fn.multi_poll(multi, extra, n, timeout_ms, ret);
}

CURLMcode curl_multi_wakeup(CURLM *multi)
{
    LOAD();
    return fn.multi_wakeup(multi);
}

CURLMsg *curl_multi_info_read(CURLM *multi, int *left)
{
    LOAD();
    return fn.multi_info_read(multi, left);
}

CURLMcode curl_multi_cleanup(CURLM *multi)
{
    LOAD();
    return fn.multi_cleanup(multi);
}
