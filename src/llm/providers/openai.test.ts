import { OpenAiAdapter } from './openai.ts';
import { adapterContract } from './provider-adapter.contract.ts';

adapterContract('openai', (config, key, url) => new OpenAiAdapter('p', config, key, url));
