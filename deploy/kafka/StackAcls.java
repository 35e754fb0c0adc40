// Grants on the local Apache Kafka broker the ACLs of deploy/production/kafka-acls.sh, read from
// its DRY_RUN output on stdin, so that the local stack and production share one list. Run by
// deploy/local/stack.sh (TOPUP_KAFKA_AUTH=scram) as a single-file program with the broker's jars:
//
//   DRY_RUN=1 bash deploy/production/kafka-acls.sh |
//       java -cp '.local/kafka/libs/*' deploy/kafka/StackAcls.java BOOTSTRAP ADMIN_PROPS
//
// Only `kafka-acls.sh ... --add` lines are taken (the SCRAM lines are the stack's own business:
// credentials are made when the storage is formatted). An option this reader does not know is an
// error, never skipped: the local broker must grant exactly what production grants. Exit 0 when
// every binding exists (creating an existing binding is a no-op).
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.acl.*;
import org.apache.kafka.common.resource.*;

public class StackAcls {
    static void fail(String why) {
        System.err.println("StackAcls: " + why);
        System.exit(1);
    }

    static AclOperation operation(String name) {
        switch (name) {
        case "Read": return AclOperation.READ;
        case "Write": return AclOperation.WRITE;
        case "Describe": return AclOperation.DESCRIBE;
        case "IdempotentWrite": return AclOperation.IDEMPOTENT_WRITE;
        default: fail("operation " + name + " is not one this stack grants"); return null;
        }
    }

    // The bindings of one kafka-acls.sh command line (its words after the script's name).
    static List<AclBinding> parse(String[] w) {
        String principal = null;
        List<AclOperation> ops = new ArrayList<>();
        List<ResourcePattern> res = new ArrayList<>();
        PatternType pattern = PatternType.LITERAL;
        List<String[]> named = new ArrayList<>();
        boolean add = false;
        for (int i = 0; i < w.length; i++) {
            switch (w[i]) {
            case "--bootstrap-server":
            case "--command-config":
                i++;
                break;
            case "--add": add = true; break;
            case "--allow-principal": principal = w[++i]; break;
            case "--operation": ops.add(operation(w[++i])); break;
            case "--topic": named.add(new String[] {"topic", w[++i]}); break;
            case "--group": named.add(new String[] {"group", w[++i]}); break;
            case "--transactional-id": named.add(new String[] {"txn", w[++i]}); break;
            case "--cluster": named.add(new String[] {"cluster", "kafka-cluster"}); break;
            case "--resource-pattern-type":
                pattern = PatternType.fromString(w[++i].toUpperCase(Locale.ROOT));
                if (pattern != PatternType.LITERAL && pattern != PatternType.PREFIXED) {
                    fail("pattern type " + w[i]);
                }
                break;
            default: fail("option " + w[i] + " is unknown here: " + String.join(" ", w));
            }
        }
        if (!add || principal == null || ops.isEmpty() || named.isEmpty()) {
            fail("not a complete --add grant: " + String.join(" ", w));
        }
        if (!principal.startsWith("User:") || principal.equals("User:*")) {
            fail("principal " + principal + " is not one named user");
        }
        for (String[] n : named) {
            ResourceType t = n[0].equals("topic")   ? ResourceType.TOPIC
                             : n[0].equals("group") ? ResourceType.GROUP
                             : n[0].equals("txn")   ? ResourceType.TRANSACTIONAL_ID
                                                    : ResourceType.CLUSTER;
            res.add(new ResourcePattern(t, n[1], t == ResourceType.CLUSTER ? PatternType.LITERAL
                                                                           : pattern));
        }
        List<AclBinding> out = new ArrayList<>();
        for (ResourcePattern r : res) {
            for (AclOperation op : ops) {
                out.add(new AclBinding(r, new AccessControlEntry(principal, "*", op,
                                                                 AclPermissionType.ALLOW)));
            }
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            fail("usage: StackAcls BOOTSTRAP ADMIN_PROPS < kafka-acls.sh DRY_RUN output");
        }
        List<AclBinding> want = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        for (String line; (line = in.readLine()) != null;) {
            String[] w = line.trim().split("\\s+");
            if (w.length == 0 || !w[0].endsWith("/kafka-acls.sh")) {
                continue;
            }
            want.addAll(parse(Arrays.copyOfRange(w, 1, w.length)));
        }
        if (want.isEmpty()) {
            fail("no grants on stdin");
        }
        Properties p = new Properties();
        try (FileInputStream f = new FileInputStream(args[1])) {
            p.load(f);
        }
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        try (Admin admin = Admin.create(p)) {
            admin.createAcls(want).all().get();
            Collection<AclBinding> have = admin.describeAcls(AclBindingFilter.ANY).values().get();
            Set<AclBinding> missing = new HashSet<>(want);
            missing.removeAll(have);
            if (!missing.isEmpty()) {
                fail("bindings missing after create: " + missing);
            }
            System.out.println("acls ready: " + new HashSet<>(want).size() + " bindings, "
                               + have.size() + " on the broker");
        }
    }
}
