import { ninjaAuth } from './ninja-auth.js';

export { ninjaAuth };
export default ninjaAuth;
export { NinjaAuthConfigError } from './errors.js';
export type * from './types.js';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory-store.js';
export { RedisStore, type RedisStoreOptions, type RedisCommandClient } from './stores/redis-store.js';
