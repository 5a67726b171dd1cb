/* manifest.c: YAML and JSON manifests into jansson values.
 *
 * JSON goes straight to jansson. YAML goes through libyaml's document API
 * and is converted node by node. Kubernetes reads YAML through a YAML 1.1
 * decoder into JSON, so plain (unquoted) scalars are typed the same way
 * here: null/~/empty are null; true/false/yes/no/on/off in their usual
 * cases are booleans; decimal, 0x, 0o and (YAML 1.1) leading-zero
 * octal integers are integers; decimal and
 * exponent forms are reals; everything else, and every quoted scalar, is a
 * string. Anchors and aliases are resolved by libyaml; merge keys (<<) are
 * not supported and are kept as ordinary keys. */
#include "kube/manifest.h"
#include "util/fs.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static bool word_in(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0) return true;
    return false;
}

static json_t *plain_scalar(const char *s)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                        "on",   "On",   "ON",   "y",   "Y",   NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO",
                                         "off",   "Off",   "OFF",   "n",  "N",  NULL};
    if (word_in(s, nulls)) return json_null();
    if (word_in(s, trues)) return json_true();
    if (word_in(s, falses)) return json_false();
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (*p && isdigit((unsigned char)*p)) {
        char *end;
        errno = 0;
        long long v;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
            v = strtoll(s, &end, 16);
        else if (p[0] == '0' && p[1] && strspn(p, "01234567") == strlen(p))
            v = strtoll(s, &end, 8); /* YAML 1.1: 0400 is octal, as modes are written */
        else if (p[0] == '0' && p[1] == 'o')
            v = strtoll(p + 2, &end, 8) * (s[0] == '-' ? -1 : 1);
        else
            v = strtoll(s, &end, 10);
        if (*end == '\0' && errno == 0) return json_integer(v);
        errno = 0;
        double d = strtod(s, &end);
        if (*end == '\0' && errno == 0) return json_real(d);
    } else if (*p == '.' && isdigit((unsigned char)p[1])) {
        char *end;
        double d = strtod(s, &end);
        if (*end == '\0') return json_real(d);
    }
    return json_string(s);
}

static json_t *convert(yaml_document_t *doc, yaml_node_t *node, int depth, err_t *err)
{
    if (depth > 100) {
        err_set(err, "nesting deeper than 100 levels");
        return NULL;
    }
    switch (node->type) {
    case YAML_SCALAR_NODE: {
        const char *s = (const char *)node->data.scalar.value;
        /* libyaml's loader tags every untagged scalar !!str, so the tag
         * cannot tell `!!str 1` from `1`; the style can: quoted is a string. */
        if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
            json_t *v = json_string(s);
            if (!v) err_set(err, "a string is not valid UTF-8");
            return v;
        }
        json_t *v = plain_scalar(s);
        if (!v) err_set(err, "a string is not valid UTF-8");
        return v;
    }
    case YAML_SEQUENCE_NODE: {
        json_t *arr = json_array();
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             it < node->data.sequence.items.top; it++) {
            json_t *v = convert(doc, yaml_document_get_node(doc, *it), depth + 1, err);
            if (!v) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, v);
        }
        return arr;
    }
    case YAML_MAPPING_NODE: {
        json_t *obj = json_object();
        for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
             pair < node->data.mapping.pairs.top; pair++) {
            yaml_node_t *k = yaml_document_get_node(doc, pair->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                json_decref(obj);
                err_set(err, "line %lu: a mapping key must be a scalar",
                        k ? (unsigned long)k->start_mark.line + 1 : 0UL);
                return NULL;
            }
            json_t *v = convert(doc, yaml_document_get_node(doc, pair->value), depth + 1, err);
            if (!v) {
                json_decref(obj);
                return NULL;
            }
            json_object_set_new(obj, (const char *)k->data.scalar.value, v);
        }
        return obj;
    }
    default:
        return json_null();
    }
}

/* libyaml's document loader takes quadratic time on deeply nested input,
 * so the depth is checked first with the (linear) event parser. */
static int check_depth(const char *text, size_t len, err_t *err)
{
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) break; /* the loader reports it */
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) depth++;
        if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) depth--;
        unsigned long line = (unsigned long)ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (depth > 100) {
            rc = err_set(err, "YAML line %lu: nesting deeper than 100 levels", line);
            break;
        }
        if (type == YAML_STREAM_END_EVENT) break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

static int parse_yaml(const char *text, size_t len, json_t *docs, err_t *err)
{
    if (check_depth(text, len, err) == -1) return -1;
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            err_set(err, "YAML line %lu column %lu: %s",
                    (unsigned long)parser.problem_mark.line + 1,
                    (unsigned long)parser.problem_mark.column + 1,
                    parser.problem ? parser.problem : "parse error");
            yaml_parser_delete(&parser);
            return -1;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) { /* end of stream */
            yaml_document_delete(&doc);
            break;
        }
        json_t *v = convert(&doc, root, 0, err);
        yaml_document_delete(&doc);
        if (!v) {
            yaml_parser_delete(&parser);
            return -1;
        }
        if (json_is_null(v))
            json_decref(v);
        else
            json_array_append_new(docs, v);
    }
    yaml_parser_delete(&parser);
    return 0;
}

int manifest_parse(const char *text, size_t len, json_t **out, err_t *err)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    json_t *docs = json_array();
    if (i < len && (text[i] == '{' || text[i] == '[')) {
        json_error_t jerr;
        json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
        if (!v) {
            json_decref(docs);
            return err_set(err, "JSON line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        }
        if (json_is_array(v) && text[i] == '[') {
            json_decref(docs);
            docs = v;
        } else {
            json_array_append_new(docs, v);
        }
    } else if (parse_yaml(text, len, docs, err) == -1) {
        json_decref(docs);
        return -1;
    }
    *out = docs;
    return 0;
}

int manifest_load_file(const char *path, json_t **docs, err_t *err)
{
    char *text;
    size_t len;
    if (fs_read_all(path, &text, &len, err) == -1) return -1;
    int rc = manifest_parse(text, len, docs, err);
    free(text);
    if (rc == -1) err_prefix(err, "%s", path);
    return rc;
}
