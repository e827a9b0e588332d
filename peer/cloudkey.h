/*
 * Rotating the cloud key without a gap. The keyring travels as a record
 * (kind "cloud-keyring", id "cloud": the keys, primary first), so every peer
 * installs each step as it learns it. A rotation takes three steps, each a
 * write of that record by the peer that was asked to rotate:
 *
 *   1. add the new key as a secondary: everyone can open it, nobody seals
 *      with it yet;
 *   2. after PEER_ROTATE_STEP_MS, make it primary: peers seal with it, and
 *      still open the old one from those that have not switched;
 *   3. after another step, retire the old key.
 *
 * A peer that was away for the whole rotation holds only the retired key
 * and needs a fresh token to come back.
 */
#ifndef PEER_CLOUDKEY_H
#define PEER_CLOUDKEY_H

#include <stdint.h>

#define PEER_KIND_CLOUD_KEYRING "cloud-keyring"
#define PEER_ROTATE_STEP_MS     5000

struct peer;

/* Starts a rotation; 0, or -EBUSY when one is already under way. */
int peer_cloudkey_rotate(struct peer *p);
/* Installs the keyring record if it is newer than what this peer uses. */
void peer_cloudkey_sync(struct peer *p);
/* Stops a rotation's timers (at shutdown). */
void peer_cloudkey_stop(struct peer *p);

#endif
