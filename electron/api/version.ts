/** The Stasis version, from package.json (inlined by esbuild in bundles, read by tsx from source). */
import pkg from '../../package.json';

export const STASIS_VERSION: string = pkg.version;
