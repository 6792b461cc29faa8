import { ninjaAuth } from './ninja-auth.js';

export { ninjaAuth };
export default ninjaAuth;
export { NinjaAuthConfigError } from './errors.js';
export type * from './types.js';
