# SPDX-License-Identifier: LGPL-2.1-or-later
# fish completion for keyward(1). tests/integration/test-completion.sh checks the commands and
# flags offered here against keyward's own help, so that they cannot drift apart.

set -l commands register unregister keys get versions acl promote create add deactivate reactivate access delete login logout whoami expiring status sync version help

function __keyward_registered_keys
        busctl --system call org.keyward.Agent1 /org/keyward/Agent1 org.keyward.Agent1 ListKeys 2>/dev/null |
                string match -ar '"[^"]*"' | string trim -c '"' | awk 'NR % 2 == 1'
end

complete -c keyward -f

# Global flags, before or after the command.
complete -c keyward -l server -x -d 'server URL (KEYWARD_SERVER)'
complete -c keyward -l server-ca -r -F -d 'CA certificates for the server (KEYWARD_SERVER_CA)'
complete -c keyward -l cert -r -F -d 'client certificate (machine authentication)'
complete -c keyward -l key -r -F -d 'client certificate key'
complete -c keyward -l hostname -x -d 'machine name for machine authentication'
complete -c keyward -l token -x -d 'user token (prefer KEYWARD_TOKEN)'
complete -c keyward -l json -d 'JSON output for reading commands'
complete -c keyward -l help -d 'show the usage'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -l version -d 'print the version'

# The commands.
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a register -d 'register keys with the local agent'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a unregister -d 'unregister a key from the agent'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a keys -d 'list key identifiers'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a get -d 'get a key'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a versions -d 'get the versions of a key'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a acl -d 'get the ACL of a key'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a promote -d 'promote a key version to primary'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a create -d 'create a new key'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a add -d 'add a new key version'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a deactivate -d 'deactivate a key version'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a reactivate -d 'reactivate an inactive key version'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a access -d 'modify the ACL of a key'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a delete -d 'delete a key'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a login -d 'get a user token with a password'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a logout -d 'revoke the user token'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a whoami -d 'show who the server thinks you are'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a expiring -d 'list keys whose certificate expires soon'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a status -d 'show the state of the local agent'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a sync -d 'make the agent fetch its keys now'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a version -d 'print the version of keyward'
complete -c keyward -n "not __fish_seen_subcommand_from $commands" -a help -d 'help about a command'
complete -c keyward -n "__fish_seen_subcommand_from help" -a "$commands"

# Each command's own flags.
complete -c keyward -n "__fish_seen_subcommand_from get" -s v -x -d 'key version to print'
complete -c keyward -n "__fish_seen_subcommand_from get" -s j -d 'print the key as JSON'
complete -c keyward -n "__fish_seen_subcommand_from get" -s n -d 'ask the server, not the agent'
complete -c keyward -n "__fish_seen_subcommand_from get" -s a -d 'include inactive versions'
complete -c keyward -n "__fish_seen_subcommand_from get" -l agent -d 'read from the agent only'

complete -c keyward -n "__fish_seen_subcommand_from versions" -s s -x -a 'active primary inactive' -d 'minimum state'
complete -c keyward -n "__fish_seen_subcommand_from versions" -s v -d 'show the state of each version'

complete -c keyward -n "__fish_seen_subcommand_from acl" -o json -d 'print the ACL as one JSON array'

complete -c keyward -n "__fish_seen_subcommand_from access" -o acl -r -F -d 'file with a JSON list of access entries'
complete -c keyward -n "__fish_seen_subcommand_from access" -s n -d 'no access (remove the entry)'
complete -c keyward -n "__fish_seen_subcommand_from access" -s r -d 'read access'
complete -c keyward -n "__fish_seen_subcommand_from access" -s w -d 'write access'
complete -c keyward -n "__fish_seen_subcommand_from access" -s a -d 'admin access'
complete -c keyward -n "__fish_seen_subcommand_from access" -s M -d 'a machine'
complete -c keyward -n "__fish_seen_subcommand_from access" -s U -d 'a user'
complete -c keyward -n "__fish_seen_subcommand_from access" -s G -d 'a user group'
complete -c keyward -n "__fish_seen_subcommand_from access" -s P -d 'a machine hostname prefix'
complete -c keyward -n "__fish_seen_subcommand_from access" -s S -d 'a service (SPIFFE ID)'
complete -c keyward -n "__fish_seen_subcommand_from access" -s N -d 'a service prefix (SPIFFE ID ending in /)'

complete -c keyward -n "__fish_seen_subcommand_from register" -s r -d 'unregister every other key'
complete -c keyward -n "__fish_seen_subcommand_from register" -s k -x -d 'key identifier to register'
complete -c keyward -n "__fish_seen_subcommand_from register" -s f -r -F -d 'file of key identifiers'
complete -c keyward -n "__fish_seen_subcommand_from register" -s g -d 'wait for the key and print it'
complete -c keyward -n "__fish_seen_subcommand_from register" -s t -x -a '5s 30s 1m' -d 'how long -g waits'
complete -c keyward -n "__fish_seen_subcommand_from register" -l reader -x -a '(__fish_complete_users | string replace -r "^" "user:"; __fish_complete_groups | string replace -r "^" "group:")' -d 'local user or group that may read the key'
complete -c keyward -n "__fish_seen_subcommand_from register" -l unit -x -a '(__fish_systemctl_services 2>/dev/null)' -d 'systemd unit that may load the key'
complete -c keyward -n "__fish_seen_subcommand_from register" -l credential -x -d 'credential name the unit asks for'
complete -c keyward -n "__fish_seen_subcommand_from register" -l on-change -x -a 'none restart reload-or-restart reload' -d 'what to do to the units on rotation'
complete -c keyward -n "__fish_seen_subcommand_from register" -l file -r -F -d 'file the agent writes the key to'
complete -c keyward -n "__fish_seen_subcommand_from register" -l file-owner -x -a '(__fish_complete_users)' -d 'owner of the file'
complete -c keyward -n "__fish_seen_subcommand_from register" -l file-group -x -a '(__fish_complete_groups)' -d 'group of the file'
complete -c keyward -n "__fish_seen_subcommand_from register" -l file-mode -x -a '0400 0440 0600 0640' -d 'octal mode of the file'

complete -c keyward -n "__fish_seen_subcommand_from expiring" -l within -x -a '7d 30d 90d' -d 'window from now'

complete -c keyward -n "__fish_seen_subcommand_from unregister" -a '(__keyward_registered_keys)'
