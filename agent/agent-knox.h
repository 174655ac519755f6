/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Knox's host layout, for apps built on Knox's client library (knox-compat=yes): the agent
 * keeps <knox-dir>/v0/keys/<id> for every registered key in the JSON of Knox's key (id, acl,
 * versions with id, base64 data, status and ts, hash), and honours Knox's register file
 * <knox-dir>/.registered, which `knox register -g -k ID` (what knox.NewFileClient() runs)
 * writes under an exclusive flock(2): ids added there are registered within Knox's wait,
 * ids taken out are unregistered. Unlike Knox's daemon, nothing is 0666: key files are 0640
 * and the register file 0660, owned by root and the knox group (knox-group=), directories
 * 0750; without that group, 0600/0700 and root alone. */

#include "agent.h"

/* Set up the layout (main thread, after the state is loaded, before the sync threads):
 * directories, the register file, the ids it lists registered, the files of cached keys
 * written again (replacing what Knox's daemon left), strays removed, and the register file
 * watched. Does nothing without knox-compat. */
int agent_knox_open(Agent *a);
void agent_knox_close(Agent *a);

/* Write Knox's file of key (a sync thread under commit_lock, or the main thread). Failures
 * are logged; the cache is what counts. */
void agent_knox_store(Agent *a, const Key *key);
/* Remove the file of id (under commit_lock, or the main thread). */
void agent_knox_remove(Agent *a, const char *id);

/* Main thread, after a registry change: ids registered (added to the register file), an id
 * unregistered (its file removed and the id taken out of the register file). */
void agent_knox_registered(Agent *a, const Registration *const *regs, size_t n);
void agent_knox_unregistered(Agent *a, const char *id);

/* The register file: ids separated by white space (Knox's strings.Fields), at most
 * KNOX_REGISTERED_MAX bytes. Valid key ids are returned once each, in file order; the
 * others are counted in *ret_invalid (may be NULL). -E2BIG past REGISTRY_KEYS_MAX ids. */
#define KNOX_REGISTERED_MAX (8u * 1024 * 1024)
int knox_registered_parse(const char *text, size_t size, char ***ret_ids, size_t *ret_invalid);
/* Its text: one id a line. */
int knox_registered_format(char *const *ids, char **ret, size_t *ret_size);
