<?php
$databases['default']['default'] = ['password' => '⟦S:password⟧', 'username' => 'drupal'];
$settings['hash_salt'] = '⟦S:b64/43⟧';
$config['system.site']['uuid'] = '⟦L:uuid⟧';
$apiKey = getenv('⟦L=MAILGUN_KEY⟧');
