/*
 * topic.c - subscription trie and retained store (stub: the real trie
 * follows; this lets the broker compile against topic.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "topic.h"

struct topic_tree {
    size_t nsubs, nretained;
};

topic_tree_t *topic_tree_new(void)
{
    return calloc(1, sizeof(struct topic_tree));
}

void topic_tree_free(topic_tree_t *t, void (*free_retained)(void *msg))
{
    free(t);
}

int topic_subscribe(topic_tree_t *t, const char *filter, size_t len, void *sub, uint8_t qos)
{
    errno = ENOMEM;
    return -1;
}

int topic_unsubscribe(topic_tree_t *t, const char *filter, size_t len, void *sub)
{
    errno = ENOENT;
    return -1;
}

void topic_match(topic_tree_t *t, const char *topic, size_t len,
                 void (*fn)(void *sub, uint8_t qos, void *arg), void *arg)
{
}

void *topic_retain_set(topic_tree_t *t, const char *topic, size_t len, void *msg)
{
    return NULL;
}

void topic_retain_match(topic_tree_t *t, const char *filter, size_t len,
                        void (*fn)(void *msg, void *arg), void *arg)
{
}

void topic_retain_foreach(topic_tree_t *t, void (*fn)(void *msg, void *arg), void *arg)
{
}

size_t topic_subscription_count(topic_tree_t *t)
{
    return t->nsubs;
}

size_t topic_retained_count(topic_tree_t *t)
{
    return t->nretained;
}
