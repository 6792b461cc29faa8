// A store key as the guard builds it: the hash tag apart from the rest of the key. A memory store files its
// entries by tag, so that everything it holds of one token is found with one lookup of the token's fingerprint,
// and no key is ever built as one long string to be hashed; a shared store gets the key as text.

/** `rest` is the key with `{}` where the tag goes: `{ tag: 'T', rest: 'reply:{}:R' }` is the key `reply:{T}:R`. */
export interface TaggedKey {
  readonly tag: string;
  readonly rest: string;
}

/** A key as text, or as its tag and the rest. */
export type StoreKey = string | TaggedKey;

const TAG_PLACE = '{}';

export const tagged = (tag: string, rest: string): TaggedKey => ({ tag, rest });

/** The key as text, as a shared store (and Redis Cluster's slot rule) sees it. */
export function keyText(key: StoreKey): string {
  if (typeof key === 'string') return key;
  const at = key.rest.indexOf(TAG_PLACE);
  return `${key.rest.slice(0, at + 1)}${key.tag}${key.rest.slice(at + 1)}`;
}

/**
 * A key given as text, split as Redis Cluster reads its hash tag: the characters between the first `{` and the
 * first `}` after it, when there are any. A key without a tag is its own group, with `''` as its rest, which no
 * tagged key's rest can be (it always holds `{}`).
 */
export function splitKey(key: string): TaggedKey {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  if (close <= open + 1) return { tag: key, rest: '' };
  return { tag: key.slice(open + 1, close), rest: `${key.slice(0, open + 1)}${key.slice(close)}` };
}
