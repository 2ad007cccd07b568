/* forbidden.js - the page a role too low gets (403): header and strings only. */
'use strict';

PS.start({});
