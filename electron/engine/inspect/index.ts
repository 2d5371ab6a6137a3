/** Looking inside checkpoints: memory image reads, the saved process state, and memory search. */
export { openImage, type ImageRange, type ImageSource, type ImageReader } from './image';
export { readMemory, type MemRead } from './mem';
export { describeProcess, inspectCheckpoint, signalName, signalSet, type ProcessDetails } from './details';
export { grepCheckpoints, type GrepHit, type GrepMatch, type GrepResult, type GrepOptions, type MappingRef } from './grep';
export { compilePattern, parseHex, type PatternSpec } from './pattern';
