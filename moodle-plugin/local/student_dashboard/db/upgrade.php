<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

/**
 * Upgrade steps of the student dashboard.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

/**
 * Upgrade the plugin's database from an older version.
 *
 * Version 2026040100 is the first release: its tables come from install.xml.
 *
 * @param int $oldversion The version we are upgrading from.
 * @return bool Always true.
 */
function xmldb_local_student_dashboard_upgrade($oldversion) {
    global $DB;

    $dbman = $DB->get_manager();

    // Automatically generated Moodle v4.5.0 release upgrade line.
    // Put any upgrade step following this.

    if ($oldversion < 2026120700) {
        // Six CHAR NOT NULL columns were declared with DEFAULT "", which XMLDB rejects with a notice on every
        // install and schema check. They have no default now; the web services always write them. Two of them
        // are indexed, and Moodle changes an indexed column only with its index dropped.
        $fields = [
            ['local_student_dashboard_reg', 'status', '50', 'currency', false],
            ['local_student_dashboard_pay', 'registrationzohoid', '100', 'studentzohoid', true],
            ['local_student_dashboard_pay', 'paymentmethod', '50', 'status', false],
            ['local_student_dashboard_unit', 'unitlevel', '50', 'unitname', false],
            ['local_student_dashboard_grade', 'unitzohoid', '100', 'studentzohoid', true],
            ['local_student_dashboard_grade', 'classzohoid', '100', 'unitzohoid', false],
        ];
        foreach ($fields as [$tablename, $name, $length, $previous, $indexed]) {
            $table = new xmldb_table($tablename);
            $field = new xmldb_field($name, XMLDB_TYPE_CHAR, $length, null, XMLDB_NOTNULL, null, null, $previous);
            if (!$dbman->field_exists($table, $field)) {
                continue;
            }
            $index = new xmldb_index($name, XMLDB_INDEX_NOTUNIQUE, [$name]);
            if ($indexed && $dbman->index_exists($table, $index)) {
                $dbman->drop_index($table, $index);
            }
            $dbman->change_field_default($table, $field);
            if ($indexed && !$dbman->index_exists($table, $index)) {
                $dbman->add_index($table, $index);
            }
        }

        upgrade_plugin_savepoint(true, 2026120700, 'local', 'student_dashboard');
    }

    return true;
}
