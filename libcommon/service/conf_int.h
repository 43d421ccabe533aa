/*
 * conf_int.h - what the conf module's files share and nothing outside
 * libcommon/service needs: the allocation arena a conf_t owns, and the
 * common sections' schema.
 */
#ifndef CORO_SERVICE_CONF_INT_H
#define CORO_SERVICE_CONF_INT_H

#include "coro/conf.h"

/* Every allocation of a conf_t comes from its arena and is freed at once. */
struct conf_arena *conf__arena_new(void);
void conf__arena_free(struct conf_arena *a);
/* Zeroed memory from a (or calloc when a is NULL). NULL/ENOMEM. */
void *conf__alloc(struct conf_arena *a, size_t n);
char *conf__strdup(struct conf_arena *a, const char *s);

/* [runtime], [log], [admin]: sections of struct conf_common. Their keys'
 * offsets are relative to struct conf_common; [admin] listen's default is
 * the schema's admin_default. */
extern const struct conf_section conf__common_sections[];
extern const struct conf_enum conf__log_levels[];

#endif
